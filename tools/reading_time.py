"""How long each chapter's main path takes to read, and how many figures it shows.

The main path of a chapter is everything before its ``## Exercises`` heading. Its
reading time is the words of prose at 200 per minute plus the visible lines of code at
20 per minute. A code cell tagged ``remove-input`` or ``remove-cell`` shows no code; a
collapsed one (``hide-input``, ``hide-cell``) still counts, since a reader who opens it
reads it. A figure is an image output of a code cell (not tagged ``remove-output`` or
``remove-cell``) or a ``{figure}`` directive or Markdown image in the prose.

    python -m tools.reading_time            # every notebook of the book, in _toc.yml order
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tools import toc

ROOT = Path(__file__).resolve().parents[1]
WORDS_PER_MINUTE = 200
CODE_LINES_PER_MINUTE = 20

_EXERCISES = re.compile(r"^#{1,6}\s+Exercises\b", re.MULTILINE)
_WORD = re.compile(r"[^\W_][\w'’.-]*")
_LABEL = re.compile(r"^\(\S+\)=\s*$", re.MULTILINE)
_FIGURE = re.compile(r"^```\{figure\}|!\[[^\]]*\]\(", re.MULTILINE)
_HIDDEN_CODE = {"remove-input", "remove-cell"}
_HIDDEN_OUTPUT = {"remove-output", "remove-cell"}


@dataclass(frozen=True)
class MainPath:
    """What a reader meets before the exercises."""

    words: int
    code_lines: int
    figures: int

    @property
    def minutes(self) -> float:
        return self.words / WORDS_PER_MINUTE + self.code_lines / CODE_LINES_PER_MINUTE


def main_path(notebook: nbformat.NotebookNode) -> MainPath:
    """Count the words, visible code lines and figures of a notebook before its exercises.

    Examples
    --------
    >>> nb = nbformat.v4.new_notebook(cells=[
    ...     nbformat.v4.new_markdown_cell("# Title\\n\\nTwo words."),
    ...     nbformat.v4.new_code_cell("x = 1\\n\\ny = 2"),
    ...     nbformat.v4.new_markdown_cell("## Exercises\\n\\nNot counted."),
    ... ])
    >>> main_path(nb)
    MainPath(words=3, code_lines=2, figures=0)
    """
    words = code_lines = figures = 0
    for cell in notebook.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "markdown":
            if _EXERCISES.search(cell.source):
                break
            text = _LABEL.sub("", cell.source)
            words += len(_WORD.findall(text))
            figures += len(_FIGURE.findall(text))
        elif cell.cell_type == "code":
            if not tags & _HIDDEN_CODE:
                code_lines += sum(1 for line in cell.source.splitlines() if line.strip())
            if not tags & _HIDDEN_OUTPUT:
                figures += sum(
                    1 for out in cell.get("outputs", []) if "image/png" in out.get("data", {})
                )
    return MainPath(words, code_lines, figures)


def chapters(root: Path = ROOT) -> list[Path]:
    """The book's notebooks in ``_toc.yml`` order."""
    found = [root / f"{entry.file}.ipynb" for entry in toc.entries(root)]
    return [path for path in found if path.exists()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: the whole book")
    args = parser.parse_args(argv)
    paths = args.notebooks or chapters()
    print(f"{'chapter':<36} {'words':>6} {'code':>5} {'minutes':>8} {'figures':>8}")
    for path in paths:
        found = main_path(nbformat.read(path, as_version=4))
        print(
            f"{path.stem:<36} {found.words:>6} {found.code_lines:>5} "
            f"{found.minutes:>8.1f} {found.figures:>8}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
