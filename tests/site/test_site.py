"""The built site, as a reader's browser sees it: every page in the table of contents.

Run with `make site-test` after `make book`. Each page is loaded over HTTP from
127.0.0.1 in headless Chromium with every request to another host refused, so a
page that needs the network fails here as it would for an offline reader.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import pytest
import yaml
from conftest import ROOT, SCREENSHOTS, SITE, offline_context

from tools import setup_cells, toc

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
ENTRIES = toc.entries()
# TensorFlow's C++ log lines, should one ever be stored in an output. (Prose may quote a
# notice's words; the log line's own prefix is what gives a leaked one away.)
TF_LOG = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+\.cc:\d+\]|absl::InitializeLog")


def page_url(base: str, file: str) -> str:
    return f"{base}/{file}.html"


def is_notebook(file: str) -> bool:
    return (ROOT / f"{file}.ipynb").exists()


def watch(page, record: dict) -> None:
    """Record console errors, uncaught exceptions and failed requests of a page."""

    def on_console(message) -> None:
        if message.type == "error":
            record["console"].append(message.text)

    def on_response(response) -> None:
        if response.status >= 400:
            record["failed"].append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: record["console"].append(str(error)))
    page.on("requestfailed", lambda request: record["failed"].append(request.url))
    page.on("response", on_response)


@pytest.fixture(scope="module")
def visits(browser, site_url) -> dict[str, dict]:
    """Load every page once; record what the checks need and save a screenshot."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    results = {}
    context = offline_context(browser, site_url)
    for entry in ENTRIES:
        page = context.new_page()
        record: dict = {"console": [], "failed": []}
        watch(page, record)
        page.goto(page_url(site_url, entry.file), wait_until="load")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.evaluate(
            """() => Promise.all([...document.images].map(i => i.complete ? 0 :
                   new Promise(r => { i.onload = i.onerror = r; })))"""
        )
        page.evaluate("() => window.MathJax?.startup?.promise")
        record.update(
            page.evaluate(
                """() => ({
                title: document.title,
                h1: document.querySelector('main h1, article h1')?.innerText ?? '',
                images: [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth]),
                overflowingCode: [...document.querySelectorAll('div.cell_input pre')]
                    .filter(e => e.checkVisibility() && e.scrollWidth > e.clientWidth + 1)
                    .map(e => e.innerText.split('\\n')[0]),
                mathElements: document.querySelectorAll('.math').length,
                typeset: document.querySelectorAll('mjx-container').length,
                rawTex: [...document.querySelectorAll('.math')]
                    .filter(m => !m.querySelector('mjx-container')).length,
                outputs: [...document.querySelectorAll('.cell_output')]
                    .map(o => o.innerText).join('\\n'),
                links: [...document.querySelectorAll('a[href]')].map(a => a.href),
            })"""
            )
        )
        # A viewport as tall as the page: Playwright's stitched full-page mode repeats the
        # theme's sticky header halfway down.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": 1280, "height": min(height, 16000)})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / f"{Path(entry.file).name}.png"))
        results[entry.file] = record
        page.close()
    context.close()
    return results


PAGES = [entry.file for entry in ENTRIES]


@pytest.mark.parametrize("file", PAGES)
def test_no_console_error_and_no_failed_request(visits, file):
    record = visits[file]
    assert record["console"] == [], f"{file}: JavaScript console errors {record['console']}"
    assert record["failed"] == [], f"{file}: requests that failed {record['failed']}"


@pytest.mark.parametrize("file", PAGES)
def test_every_image_loaded(visits, file):
    broken = [src for src, width in visits[file]["images"] if width == 0]
    assert broken == [], f"{file}: images that did not load {broken}"


@pytest.mark.parametrize("file", PAGES)
def test_code_cells_fit_the_page(visits, file):
    """At 1280 px, no code cell needs a horizontal scroll bar (code is 100 columns wide)."""
    assert visits[file]["overflowingCode"] == [], (
        f"{file}: code cells wider than the article: {visits[file]['overflowingCode']}"
    )


@pytest.mark.parametrize("file", PAGES)
def test_math_is_typeset(visits, file):
    record = visits[file]
    assert record["rawTex"] == 0, f"{file}: {record['rawTex']} math elements left as raw TeX"
    if record["mathElements"]:
        assert record["typeset"] >= record["mathElements"]


@pytest.mark.parametrize("file", PAGES)
def test_no_tensorflow_log_line_is_visible(visits, file):
    match = TF_LOG.search(visits[file]["outputs"])
    assert match is None, f"{file}: TensorFlow log text visible: {match and match.group(0)!r}"


@pytest.mark.parametrize("file", [f for f in PAGES if is_notebook(f)])
def test_launch_and_download_links_point_at_this_notebook(visits, file):
    url, branch = setup_cells.repository()
    owner_repo = urlparse(url).path.strip("/")
    links = set(visits[file]["links"])
    colab = f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{file}.ipynb"
    binder = f"https://mybinder.org/v2/gh/{owner_repo}/{branch}?urlpath=tree/{file}.ipynb"
    assert colab in links, f"{file}: no Colab link {colab}"
    assert binder in links, f"{file}: no Binder link {binder}"
    downloads = [link for link in links if link.endswith(f"_sources/{file}.ipynb")]
    assert downloads, f"{file}: no .ipynb download link"
    assert (SITE / "_sources" / f"{file}.ipynb").exists()


@pytest.mark.parametrize("file", PAGES)
def test_title_and_chapter_number(visits, file):
    """A numbered chapter's title carries its number, which is its file's prefix."""
    record = visits[file]
    heading = record["h1"].rstrip("#").strip()
    assert heading, f"{file}: no H1"
    entry = next(e for e in ENTRIES if e.file == file)
    number = ""
    if entry.numbered:
        prefix = re.match(r"(\d+)_", Path(file).name)
        assert prefix, f"{file}: a numbered chapter's file name starts with its number"
        number = f"{int(prefix.group(1))}. "
    assert record["title"] == f"{number}{heading} — {CONFIG['title']}", record["title"]


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for key in ("id", "name"):
            if attributes.get(key):
                self.ids.add(attributes[key])
        if tag == "a" and attributes.get("href"):
            self.hrefs.append(attributes["href"])


def _parse(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_no_internal_link_or_anchor_is_broken():
    broken = []
    parsed: dict[Path, _Anchors] = {}
    for file in PAGES:
        page = SITE / f"{file}.html"
        parsed.setdefault(page, _parse(page))
        for href in parsed[page].hrefs:
            if urlparse(href).scheme or href.startswith(("mailto:", "javascript:")):
                continue
            target, fragment = urldefrag(urljoin(page.as_uri(), href))
            target_path = Path(unquote(urlparse(target).path))
            if target_path.is_dir():
                target_path = target_path / "index.html"
            if not target_path.exists():
                broken.append(f"{file}: {href} (no such file)")
                continue
            if fragment and target_path.suffix == ".html":
                anchors = parsed.setdefault(target_path, _parse(target_path))
                if unquote(fragment) not in anchors.ids:
                    broken.append(f"{file}: {href} (no anchor #{fragment})")
    assert broken == [], "broken internal links:\n" + "\n".join(broken)
