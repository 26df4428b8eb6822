"""What every chapter notebook owes its reader: glued numbers, a summary, exercises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))

# Stripped before looking for numbers: code, math, MyST roles and directive fences, links.
_NOT_PROSE = [
    re.compile(r"```.*?```", re.S),  # fenced blocks (code, directives' own lines kept below)
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"\$[^$\n]+\$"),  # inline math
    re.compile(r"\{[\w:-]+\}`[^`]*`"),  # roles: {glue:text}`x:.2f`, {cite}`key`, {numref}`fig`
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"https?://\S+"),
    # Versions and names with digits: TensorFlow 2.21, Python 3.10+, float32, 2D, ...
    re.compile(
        r"\b(?:TensorFlow|Keras|NumPy|Python|Sphinx|Jupyter Book|jupyter-book|nbval|myst-nb|"
        r"scikit-learn|matplotlib|IEEE|version|v)\s*\d+(?:\.\d+)+\+?"
    ),
]
# A measured figure: a decimal, a scientific literal, a percentage, a time, a ratio, a ULP count.
MEASUREMENT = re.compile(
    r"\b\d+(?:\.\d+)?\s*(?:%|ms\b|µs\b|seconds?\b|s\b|ULPs?\b|GFLOP/s)"
    r"|\b\d+(?:\.\d+)?\s*×(?!\s*\d)"
    r"|\b\d+(?:\.\d+)?e[-+]?\d+\b"
    r"|(?<![\w.])\d+\.\d+(?![\w.])"
)


def prose(markdown: str) -> str:
    for pattern in _NOT_PROSE:
        markdown = pattern.sub(" ", markdown)
    return markdown


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def test_the_measurement_detector_finds_typed_numbers():
    typed = "The difference is 12.50 here, 5.4 ULP on average, 1.3× slower, in 17 ms."
    assert MEASUREMENT.findall(prose(typed)) == ["12.50", "5.4 ULP", "1.3×", "17 ms"]
    glued = "The difference is {glue:text}`diff:.2f` with TensorFlow 2.21 on a 3×3 kernel."
    assert MEASUREMENT.findall(prose(glued)) == []


def markdown_of(path: Path) -> list[str]:
    if path.suffix == ".md":
        return [path.read_text(encoding="utf-8")]
    return ["".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS + PAGES, ids=lambda p: p.name)
def test_prose_quotes_no_hand_typed_measurement(path):
    found = []
    for markdown in markdown_of(path):
        found += MEASUREMENT.findall(prose(markdown))
    assert found == [], (
        f"{path.name}: numbers typed into prose {found}; compute them and use "
        "myst_nb.glue with {glue:text} (see CONTRIBUTING.md)"
    )


def _section(path: Path, heading: str) -> list[dict] | None:
    all_cells = cells(path)
    for index, cell in enumerate(all_cells):
        lines = "".join(cell["source"]).splitlines()
        if cell["cell_type"] == "markdown" and f"## {heading}" in lines:
            return all_cells[index + 1 :]
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ends_with_a_summary_and_three_to_five_executed_exercises(path):
    assert _section(path, "Summary") is not None, f"{path.name}: no '## Summary' section"
    exercises = _section(path, "Exercises")
    assert exercises is not None, f"{path.name}: no '## Exercises' section"
    solutions = [c for c in exercises if c["cell_type"] == "code"]
    assert 3 <= len(solutions) <= 5, f"{path.name}: {len(solutions)} exercise solutions"
    for solution in solutions:
        source = "".join(solution["source"])
        assert "hide-cell" in solution["metadata"].get("tags", []), (
            f"{path.name}: a solution is not collapsed (tag it hide-cell): {source[:60]!r}"
        )
        assert "assert" in source, f"{path.name}: a solution asserts nothing: {source[:60]!r}"
        assert solution["execution_count"] is not None, f"{path.name}: a solution never ran"


def _figure_cells(path: Path) -> list[dict]:
    return [
        c
        for c in cells(path)
        if c["cell_type"] == "code"
        and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_is_captioned_named_and_referenced(path):
    markdown = "\n".join(markdown_of(path))
    for cell in _figure_cells(path):
        figure = cell["metadata"].get("mystnb", {}).get("figure", {})
        source = "".join(cell["source"])[:60]
        assert figure.get("caption") and figure.get("name"), (
            f"{path.name}: a figure without mystnb.figure caption and name: {source!r}"
        )
        assert f"{{numref}}`{figure['name']}`" in markdown, (
            f"{path.name}: figure {figure['name']!r} is never referenced with {{numref}}"
        )


IGNORED = "# NBVAL_IGNORE_OUTPUT"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_ignored_cell_still_asserts(path):
    """An output nbval does not compare is checked by the cell itself (CONTRIBUTING §2)."""
    silent = [
        "".join(c["source"])[len(IGNORED) :].strip()[:60]
        for c in cells(path)
        if c["cell_type"] == "code"
        and "".join(c["source"]).startswith(IGNORED)
        and not re.search(r"^\s*assert\b|\bas_recorded\(", "".join(c["source"]), re.M)
    ]
    assert silent == [], f"{path.name}: ignored cells that assert nothing: {silent}"
