"""The built documentation site, checked in a real browser (headless Chromium).

Skipped unless playwright and a Chromium are installed: on Debian
``apt-get install chromium-headless-shell`` and ``pip install playwright``
(playwright drives the system browser; no browser download). The site is the
one in ``SKLMIXED_SITE_DIR`` when that is set (CI builds it first), otherwise it
is built here with ``mkdocs build``.

Every page: has content, shows no ``\\|`` (a Markdown escape that leaked into
the page), loads all its images, and every formula in its code spans parses.
The estimators' HTML repr links each parameter to a row of the estimator's page.
"""

from __future__ import annotations

import functools
import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_docs import formulas_in  # the same recognizer as for the Markdown sources

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ["chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"]


def _chromium() -> str | None:
    if os.environ.get("SKLMIXED_CHROMIUM"):
        return os.environ["SKLMIXED_CHROMIUM"]
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("SKLMIXED_SITE_DIR")
    if given:
        site = Path(given)
        assert (site / "index.html").is_file(), f"SKLMIXED_SITE_DIR={given} holds no site"
        return site
    pytest.importorskip("mkdocs")
    site = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"]
        + ["-f", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return site


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=_chromium())
        except Exception as exc:  # no system browser and no playwright-installed one
            pytest.skip(f"no Chromium to run: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()


def _pages(site: Path) -> list[str]:
    pages = []
    for path in sorted(site.rglob("index.html")):
        rel = path.relative_to(site).parent.as_posix()
        if rel.startswith(("assets", "search")):
            continue
        pages.append("" if rel == "." else rel + "/")
    return pages


def test_every_page(site, server, browser):
    from sklmixed.formula import parse_formula

    pages = _pages(site)
    assert len(pages) >= 10, pages
    problems = []
    page = browser.new_page()
    for rel in pages:
        page.goto(server + rel)
        main = "article" if page.locator("article").count() else "body"  # theme-independent
        text = page.inner_text(main)
        if len(text.strip()) < 100:
            problems.append(f"{rel}: almost no content ({len(text.strip())} characters)")
        if "\\|" in text:
            problems.append(f"{rel}: shows '\\|': {text[text.index(chr(92)) - 40 :][:80]!r}")
        broken = page.evaluate(
            """async () => {
                const bad = [];
                for (const img of document.images) {
                    img.loading = "eager";
                    try { await img.decode(); } catch (e) { bad.push(img.src); continue; }
                    if (!img.naturalWidth) bad.push(img.src);
                }
                return bad;
            }"""
        )
        problems += [f"{rel}: image does not load: {src}" for src in broken]
        spans = page.eval_on_selector_all(
            f"{main} code:not(pre code)", "els => els.map(e => e.textContent)"
        )
        for span in spans:
            for formula in formulas_in(html.unescape(span)):
                if "\\" in formula:  # a leaked Markdown escape, e.g. (1 \| g)
                    problems.append(f"{rel}: formula {formula!r} has a backslash")
                try:
                    parse_formula(formula)
                except Exception as exc:
                    problems.append(f"{rel}: formula {formula!r} does not parse: {exc}")
    page.close()
    assert not problems, "\n".join(problems)


def test_gallery_pages_show_output_and_figures(site, server, browser):
    page = browser.new_page()
    page.goto(server + "generated/gallery/01_random_slopes/")
    assert "Linear mixed model fit by maximum likelihood" in page.inner_text("article")
    assert page.locator("article img").count() >= 1
    page.close()


@pytest.mark.parametrize("name", ["MixedLMRegressor", "MixedGLMClassifier", "MixedGLMRegressor"])
def test_estimator_repr_links_land_on_their_parameters(name, site, server, browser):
    import sklmixed
    from sklmixed.estimators._base import DOCS_URL

    links = re.findall(r'href="([^"]+)"', getattr(sklmixed, name)()._repr_html_())
    assert links[0] == f"{DOCS_URL}api/{name}/"
    page = browser.new_page(viewport={"width": 1200, "height": 700})
    missed = []
    for link in links[1:]:
        fragment = urlsplit(link).fragment
        param, _, suffix = fragment.removeprefix(":~:text=").partition(",-")
        if "-" in suffix:
            # scikit-learn leaves '-' (a text-fragment delimiter) unescaped in the
            # type line, so "default=-1" cannot match: the browser stays at the top
            continue
        page.goto(server + f"api/{name}/#{fragment}")
        page.wait_for_timeout(300)  # the scroll to a text fragment is asynchronous
        visible = page.evaluate(
            """name => [...document.querySelectorAll("tr.doc-section-item td:first-child code")]
                .filter(c => c.textContent === name)
                .some(c => { const r = c.getBoundingClientRect();
                             return r.top >= 0 && r.bottom <= innerHeight; })""",
            param,
        )
        if not visible:
            missed.append(param)
    page.close()
    assert not missed, f"links that do not land on their row: {missed}"
