"""The book's table of contents (``_toc.yml``), read once for the tests and tools."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Entry:
    """One page of the book: its path without suffix, and whether its part is numbered."""

    file: str
    numbered: bool


def entries(root: Path = ROOT) -> list[Entry]:
    """Return every page in ``_toc.yml`` in reading order, the root page first."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    found = [Entry(toc["root"], False)]

    def walk(items: list[dict], numbered: bool) -> None:
        for item in items:
            if "file" in item:
                found.append(Entry(item["file"], numbered))
            walk(item.get("sections", []), numbered)

    for part in toc.get("parts", []):
        walk(part["chapters"], bool(part.get("numbered", False)))
    walk(toc.get("chapters", []), bool(toc.get("numbered", False)))
    return found


def files(root: Path = ROOT) -> list[str]:
    """Return the paths (without suffix) of every page in ``_toc.yml``."""
    return [entry.file for entry in entries(root)]
