#!/usr/bin/env python
"""Open built pages of the book in headless Chromium, offline, and check what a reader sees.

For each page (default: every ``_build/html/book/*.html``):

- math is typeset: MathJax finished, at least one ``mjx-container``, no ``mjx-merror`` and no
  raw ``\\[``/``$$`` left in the text; MathJax's web fonts loaded (no CDN: they are vendored);
- every ``<img>`` loaded (``complete`` and ``naturalWidth > 0``);
- no request left the machine (only the local server is allowed; any other request is blocked
  and reported), no request failed and no local file answered with an HTTP error;
- the page's scripts raised no uncaught error (but a known one of the theme);
- a screenshot of the whole page (up to 16,000 pixels high) is saved to
  ``_build/screenshots/<page>.png``.

The pages are served from ``_build/html`` by a local HTTP server on 127.0.0.1 (a thread of this
script), as a reader's browser would load them. Chromium is driven by Playwright (pip
``playwright``, in the ``test`` extra) with the system's browser, Debian's ``chromium``
(``apt-get install -y chromium``): ``playwright install`` is never needed and nothing is downloaded.

    python scripts/browser_check.py                    # all chapters
    python scripts/browser_check.py book/03_gumbel_max.html --min-math 50
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"

# Playwright adds --headless and its own automation flags; these keep Chromium quiet and offline.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
]
VIEWPORT = {"width": 1280, "height": 2000}
MAX_SHOT_HEIGHT = 16000  # Chromium cannot capture much taller surfaces in one piece
LOAD_TIMEOUT_MS = 60_000
# Requests Chromium aborts itself (a navigation superseding a prefetch, ...) are not failures.
CANCELED = ("net::ERR_ABORTED",)
# Uncaught errors that come from the theme, not from the book: Jupyter Book 1.x writes
# sphinx-thebe's `const THEBE_JS_URL = ...` config script into every page twice, and the second
# copy throws. Thebe (live code) is not enabled here; nothing a reader sees depends on it.
KNOWN_SCRIPT_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)

# Called in the page once it has loaded; resolves when MathJax is done (or absent), or fails
# after REPORT_TIMEOUT_MS (Playwright's evaluate itself has no timeout).
REPORT_TIMEOUT_MS = 90_000
PAGE_REPORT = r"""
async (timeoutMs) => {
  const report = async () => {
    const started = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - started < 15000) {
      await new Promise(r => setTimeout(r, 100));
    }
    const mathjax = !!(window.MathJax && MathJax.startup && MathJax.startup.promise);
    if (mathjax) { await MathJax.startup.promise; }
    await document.fonts.ready;
    const images = Array.from(document.images).map(i => ({
      src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth}));
    const text = document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText;
    const fonts = Array.from(document.fonts).filter(f => f.family.replace(/"/g, '').startsWith('MJX'));
    return JSON.stringify({
      mathjax: mathjax,
      version: mathjax ? MathJax.version : null,
      math: document.querySelectorAll('mjx-container').length,
      math_elements: document.querySelectorAll('.math').length,
      untypeset: Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container'))
        .map(e => e.textContent.slice(0, 80)),
      errors: Array.from(document.querySelectorAll('mjx-merror'))
        .map(e => e.getAttribute('data-mjx-error') || e.textContent.slice(0, 80)),
      raw: (text.match(/\\\[|\$\$|\\begin\{/g) || []).length,
      fonts_loaded: fonts.filter(f => f.status === 'loaded').length,
      fonts_failed: fonts.filter(f => f.status === 'error').map(f => f.family),
      images: images,
      wide: Array.from(document.querySelectorAll('mjx-container[display="true"]'))
        .filter(e => e.firstElementChild && e.firstElementChild.getBoundingClientRect().width > e.clientWidth + 1)
        .map(e => (e.closest('.math') || e).textContent.slice(0, 60)),
      height: Math.ceil(document.documentElement.scrollHeight),
    });
  };
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`no page report after ${timeoutMs} ms`)), timeoutMs));
  return Promise.race([report(), timeout]);
}
"""


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def is_local(url: str, base: str) -> bool:
    return url.startswith((base + "/", "data:", "blob:", "about:")) or url == base


def check_page(browser, base: str, page_name: str, min_math: int) -> list[str]:
    """Load one page in a fresh browser context; return the problems found (empty: the page is fine)."""
    from playwright.sync_api import Error as PlaywrightError

    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, service_workers="block")
    external: set[str] = set()
    failed: list[str] = []
    http_errors: list[str] = []
    script_errors: list[str] = []

    def block_external(route):  # the book must work offline: nothing but the local server is reached
        external.add(route.request.url)
        route.abort("internetdisconnected")

    context.route(lambda url: not is_local(url, base), block_external)
    page = context.new_page()
    page.on("requestfailed", lambda r: failed.append(f"{r.failure} ({r.url})") if r.url not in external else None)
    page.on("response", lambda r: http_errors.append(f"HTTP {r.status} ({r.url})") if r.status >= 400 else None)
    page.on("pageerror", lambda e: script_errors.append(str(e).splitlines()[0][:200]))
    shot_path = SHOTS / (page_name.replace("/", "__").removesuffix(".html") + ".png")
    try:
        page.goto(f"{base}/{page_name}", wait_until="load", timeout=LOAD_TIMEOUT_MS)
        report = json.loads(page.evaluate(PAGE_REPORT, REPORT_TIMEOUT_MS))
        page.set_viewport_size({"width": VIEWPORT["width"], "height": min(report["height"], MAX_SHOT_HEIGHT)})
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=shot_path, timeout=90_000)
    except PlaywrightError as error:
        return [f"page could not be checked: {error.message.splitlines()[0]}"]
    finally:
        context.close()

    problems = []
    if report["math_elements"] and not report["mathjax"]:
        problems.append("MathJax did not load (is _vendor/mathjax vendored and html_extra_path set?)")
    if report["math"] < min_math:
        problems.append(f"only {report['math']} typeset formulas (mjx-container), expected >= {min_math}")
    if report["untypeset"]:
        problems.append(f"{len(report['untypeset'])} math element(s) not typeset: {report['untypeset'][:5]}")
    if report["errors"]:
        problems.append(f"{len(report['errors'])} MathJax error(s): {report['errors'][:5]}")
    if report["raw"]:
        problems.append(f"{report['raw']} raw TeX delimiters left untypeset in the text")
    if report["fonts_failed"]:
        problems.append(f"MathJax fonts failed to load: {report['fonts_failed']}")
    bad_images = [i["src"] for i in report["images"] if not i["ok"]]
    if bad_images:
        problems.append(f"{len(bad_images)} image(s) did not load: {bad_images}")
    if external:
        problems.append(f"requests left the machine (the book must work offline): {sorted(external)}")
    problems += [f"request failed: {failure}" for failure in failed if not failure.startswith(CANCELED)]
    problems += [f"local file missing or broken: {error}" for error in http_errors]
    problems += [f"uncaught script error: {error}" for error in script_errors if not error.startswith(KNOWN_SCRIPT_ERRORS)]
    print(
        f"  {page_name}: MathJax {report['version']}, {report['math']}/{report['math_elements']} formulas typeset, "
        f"{report['fonts_loaded']} math fonts, {len(report['images'])} images, screenshot "
        f"{shot_path.relative_to(ROOT)}"
    )
    for formula in report["wide"]:
        print(f"    note {page_name}: display formula wider than the text column: {formula!r}")
    return problems


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("browser_check: Chromium not found; install it with `apt-get install -y chromium`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="pages relative to _build/html (default: book/*.html)")
    parser.add_argument("--min-math", type=int, default=1, help="fewest typeset formulas per page")
    args = parser.parse_args(argv)
    if not (HTML / "index.html").exists():
        sys.exit(f"browser_check: {HTML} has no index.html; build the book first (scripts/build_book.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit('browser_check: Playwright not found; install it with `pip install -e ".[test]"` (or `pip install playwright`)')
    chromium = find_chromium()
    pages = args.pages or sorted(p.relative_to(HTML).as_posix() for p in (HTML / "book").glob("*.html"))
    server, base = serve(HTML)
    failures = 0
    try:
        with sync_playwright() as playwright:
            # The system's Chromium, never a browser downloaded by Playwright.
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
            print(f"browser_check: {len(pages)} page(s) from {HTML} via {base}, Chromium {browser.version}")
            try:
                for page in pages:
                    # Pages without math (the bibliography) only need their images and no external requests.
                    min_math = 0 if page.endswith("references.html") else args.min_math
                    problems = check_page(browser, base, page, min_math)
                    for problem in problems:
                        print(f"    FAIL {page}: {problem}", file=sys.stderr)
                    failures += bool(problems)
            finally:
                browser.close()
    finally:
        server.shutdown()
    if failures:
        print(f"browser_check: {failures} page(s) failed", file=sys.stderr)
        return 1
    print(f"browser_check: all {len(pages)} page(s) OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
