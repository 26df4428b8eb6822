"""tools.setup_cells: the Colab setup cell follows _config.yml's repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from tools import setup_cells

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def book_copy(tmp_path: Path) -> Path:
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    notebook = setup_cells.notebooks(ROOT)[0]
    shutil.copy(notebook, tmp_path / "book" / notebook.name)
    return tmp_path


def test_changing_the_repository_is_caught_and_then_written(book_copy: Path):
    config = book_copy / "_config.yml"
    url, _ = setup_cells.repository(config)
    config.write_text(config.read_text().replace(url, "https://github.com/someone/fork"))
    assert [p.name for p in setup_cells.disagreeing(book_copy)] == [
        setup_cells.notebooks(ROOT)[0].name
    ]
    assert len(setup_cells.write(book_copy)) == 1
    assert setup_cells.disagreeing(book_copy) == []
    cell = setup_cells.first_code_cell(nbformat.read(setup_cells.notebooks(book_copy)[0], 4))
    assert 'REPOSITORY = "https://github.com/someone/fork"' in cell["source"]
    assert cell["outputs"] == [] and setup_cells.TAG in cell["metadata"]["tags"]


def test_a_visible_setup_cell_is_caught_and_then_hidden(book_copy: Path):
    path = setup_cells.notebooks(book_copy)[0]
    notebook = nbformat.read(path, 4)
    setup_cells.first_code_cell(notebook)["metadata"]["tags"] = []
    nbformat.write(notebook, path)
    assert setup_cells.disagreeing(book_copy) == [path]
    setup_cells.write(book_copy)
    assert setup_cells.disagreeing(book_copy) == []


def test_a_notebook_without_a_setup_cell_is_refused(book_copy: Path):
    path = setup_cells.notebooks(book_copy)[0]
    notebook = nbformat.read(path, 4)
    notebook.cells = [c for c in notebook.cells if c.cell_type == "markdown"]
    nbformat.write(notebook, path)
    assert setup_cells.disagreeing(book_copy) == [path]
    with pytest.raises(SystemExit, match="not a Colab setup cell"):
        setup_cells.write(book_copy)
