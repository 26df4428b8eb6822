"""A local Sphinx extension for the book's site (loaded through ``_config.yml``).

It does two things:

1. **Offline math.** Sphinx loads MathJax from a CDN by default, so a site read
   without a network (or tested in CI) shows raw TeX. The build copies MathJax 3
   from the ``django-static-mathjax`` distribution (a plain PyPI wheel of the
   official MathJax files, no Django needed) into ``_static/mathjax/`` and
   points ``mathjax_path`` there.
2. **One script, once.** sphinx-thebe registers an inline script
   (``const THEBE_JS_URL = …``) after the HTML builder has started, with file
   name ``None``. Sphinx 7 then adds the registry's copy again under the name
   ``""`` when it prepares writing, and the two are not recognised as the same
   asset, so every page declared ``THEBE_JS_URL`` twice and the browser logged
   ``Identifier 'THEBE_JS_URL' has already been declared``. Registering inline
   scripts under one name (``""``) in the builder's list lets Sphinx's own
   de-duplication work.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

#: The MathJax 3 combined component Sphinx 7 uses by default, and what it loads lazily.
MATHJAX_ENTRY = "tex-mml-chtml.js"
MATHJAX_PARTS = ("a11y", "adaptors", "input", "output", "sre", "ui", MATHJAX_ENTRY)
CDN_PREFIX = "https://cdn.jsdelivr.net/npm/mathjax@3"


def packaged_mathjax() -> Path:
    """Return the directory of MathJax's ``es5`` build inside ``django-static-mathjax``."""
    import mathjax  # the import name of the django-static-mathjax distribution

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _use_packaged_mathjax(app: Sphinx, config: Any) -> None:
    if not config.mathjax_path or config.mathjax_path.startswith(CDN_PREFIX):
        config.mathjax_path = f"mathjax/{MATHJAX_ENTRY}"


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source = packaged_mathjax()
    target = Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            shutil.copy2(source / part, target / part)


def _register_inline_scripts_once(app: Sphinx, env: Any, docnames: list[str]) -> None:
    js_files = getattr(app.builder, "_js_files", None)
    if js_files is None:
        return
    for index, asset in enumerate(js_files):
        if asset.filename is None:
            js_files[index] = type(asset)("", **asset.attributes, priority=asset.priority)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", _use_packaged_mathjax)
    app.connect("build-finished", _copy_mathjax)
    # After sphinx-thebe's own handler (default priority 500) has added its script.
    app.connect("env-before-read-docs", _register_inline_scripts_once, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
