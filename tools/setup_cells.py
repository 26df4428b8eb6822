"""The Colab setup cell that opens every chapter notebook, derived from ``_config.yml``.

The repository's address is written once, in ``_config.yml`` (``repository.url``
and ``repository.branch``). The launch buttons read it from there; this module
renders the first code cell of every notebook from it, tagged ``remove-input``: it
runs on Colab, where tags mean nothing, and the site does not show it.

    python -m tools.setup_cells --check   # exit 1 if a notebook disagrees
    python -m tools.setup_cells --write   # rewrite the cells (make setup-cells)

Rewriting a setup cell does not change any output: elsewhere than on Colab the
cell does nothing and prints nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "conv2d-companion"
MARKER = "# Colab setup"
#: The site hides the setup cell; its (empty) output would show nothing anyway.
TAG = "remove-input"

TEMPLATE = """\
# Colab setup: on Google Colab, install the book's companion package; elsewhere do nothing.
import subprocess
import sys

REPOSITORY = "{url}"
BRANCH = "{branch}"
if "google.colab" in sys.modules:
    package = f"{distribution}[notebook] @ git+{{REPOSITORY}}@{{BRANCH}}"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", package], check=True)"""


def repository(config_path: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """Return ``(url, branch)`` of the repository named in ``_config.yml``."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def setup_cell_source(config_path: Path = ROOT / "_config.yml") -> str:
    """Return the source every notebook's first code cell must have."""
    url, branch = repository(config_path)
    return TEMPLATE.format(url=url, branch=branch, distribution=DISTRIBUTION)


def notebooks(root: Path = ROOT) -> list[Path]:
    """Return the book's notebooks, sorted."""
    return sorted(p for p in (root / "book").glob("*.ipynb"))


def first_code_cell(notebook: dict) -> dict | None:
    """Return a notebook's first code cell, or ``None``."""
    return next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)


def disagreeing(root: Path = ROOT) -> list[Path]:
    """Return the notebooks whose first code cell is not the setup cell."""
    expected = setup_cell_source(root / "_config.yml")
    bad = []
    for path in notebooks(root):
        cell = first_code_cell(nbformat.read(path, as_version=4))
        if cell is None or "".join(cell["source"]) != expected or not _hidden(cell):
            bad.append(path)
    return bad


def _hidden(cell: dict) -> bool:
    """Whether the site hides a cell's code."""
    return TAG in cell.get("metadata", {}).get("tags", [])


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite (or insert) the setup cell in every notebook; return those changed."""
    expected = setup_cell_source(root / "_config.yml")
    changed = []
    for path in notebooks(root):
        notebook = nbformat.read(path, as_version=4)
        cell = first_code_cell(notebook)
        if cell is not None and "".join(cell["source"]).startswith(MARKER):
            if "".join(cell["source"]) == expected and _hidden(cell):
                continue
            cell["source"] = expected
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if TAG not in tags:
                tags.append(TAG)
        else:
            raise SystemExit(f"{path}: its first code cell is not a Colab setup cell")
        nbformat.write(notebook, path)
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="report notebooks that disagree")
    mode.add_argument("--write", action="store_true", help="rewrite the setup cells")
    args = parser.parse_args(argv)
    if args.write:
        for path in write():
            print(f"rewrote the setup cell of {path.relative_to(ROOT)}")
        return 0
    bad = disagreeing()
    for path in bad:
        print(f"{path.relative_to(ROOT)}: setup cell disagrees with _config.yml")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
