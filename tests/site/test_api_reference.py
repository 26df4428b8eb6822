"""The API reference page documents every public name of the companion package."""

from __future__ import annotations

import importlib
import pkgutil
import re

from conftest import ROOT, SITE

import companion


def modules() -> list[str]:
    """The companion package's public modules."""
    return [i.name for i in pkgutil.iter_modules(companion.__path__) if not i.name.startswith("_")]


def test_every_module_has_a_section():
    source = (ROOT / "book" / "api.md").read_text(encoding="utf-8")
    absent = [m for m in modules() if f".. automodule:: companion.{m}\n" not in source]
    assert absent == [], f"book/api.md has no automodule for: {absent}"


def test_every_public_name_is_documented():
    html = (SITE / "book" / "api.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'id="(companion\.[\w.]+)"', html))
    missing = [
        f"companion.{module}.{name}"
        for module in modules()
        for name in importlib.import_module(f"companion.{module}").__all__
        if f"companion.{module}.{name}" not in documented
    ]
    assert missing == [], f"public names missing from the API reference: {missing}"
