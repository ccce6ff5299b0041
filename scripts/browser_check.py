#!/usr/bin/env python
"""Open built pages of the book in headless Chromium, offline, and check what a reader sees.

For each page (default: every ``_build/html/book/*.html``):

- math is typeset: MathJax finished, at least one ``mjx-container``, no ``mjx-merror`` and no
  raw ``\\[``/``$$`` left in the text; MathJax's web fonts loaded (no CDN: they are vendored);
- every ``<img>`` loaded (``complete`` and ``naturalWidth > 0``);
- no request left the machine (only the local server is allowed);
- a full-page screenshot is saved to ``_build/screenshots/<page>.png``.

The pages are served from ``_build/html`` by a local HTTP server on 127.0.0.1 (a thread of this
script), as a reader's browser would load them. Chromium is driven through the DevTools
protocol over a pipe (``--remote-debugging-pipe``): no Python dependency beyond the standard
library. Needs Debian's ``chromium`` (``apt-get install -y chromium``).

    python scripts/browser_check.py                    # all chapters
    python scripts/browser_check.py book/03_gumbel_max.html --min-math 50
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
    "--window-size=1280,2000",
]

# Evaluated in the page once it has loaded; resolves when MathJax is done (or absent).
PAGE_REPORT = r"""
(async () => {
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
})()
"""


class DevTools:
    """Minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, chromium: str, user_data_dir: str):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Move the child's ends above 4 so that the dup2 onto 3 and 4 cannot clobber them.
        to_chrome_r, from_chrome_w = (self._above(fd) for fd in (to_chrome_r, from_chrome_w))

        def child_fds():  # the child reads commands on fd 3 and writes replies on fd 4
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # fds 3 and 4 are created by dup2 in the child; keep them open across exec
            preexec_fn=child_fds,
            pass_fds=(3, 4),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    @staticmethod
    def _above(fd: int, floor: int = 10) -> int:
        new = os.dup(fd) if fd >= floor else fcntl.fcntl(fd, fcntl.F_DUPFD, floor)
        os.close(fd)
        return new

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply from Chromium")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check_page(tools: DevTools, base: str, page: str, min_math: int) -> list[str]:
    """Load one page in a fresh tab; return the problems found (empty: the page is fine)."""
    target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    tools.events.clear()
    tools.send("Network.enable", session=session)
    tools.send("Page.enable", session=session)
    tools.send("Page.navigate", {"url": f"{base}/{page}"}, session=session)
    tools.wait_event("Page.loadEventFired")
    result = tools.send(
        "Runtime.evaluate", {"expression": PAGE_REPORT, "awaitPromise": True, "returnByValue": True}, session=session, timeout=90
    )
    if "exceptionDetails" in result:
        return [f"page script failed: {result['exceptionDetails']}"]
    report = json.loads(result["result"]["value"])
    external = sorted(
        {
            e["params"]["request"]["url"]
            for e in tools.events
            if e.get("method") == "Network.requestWillBeSent"
            and not e["params"]["request"]["url"].startswith((base, "data:", "blob:", "about:"))
        }
    )
    failed_requests = [e["params"] for e in tools.events if e.get("method") == "Network.loadingFailed"]
    tools.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": min(report["height"], 16000), "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    shot = tools.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session, timeout=90)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot_path = SHOTS / (page.replace("/", "__").removesuffix(".html") + ".png")
    shot_path.write_bytes(base64.b64decode(shot["data"]))
    tools.send("Target.closeTarget", {"targetId": target})

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
        problems.append(f"requests left the machine (the book must work offline): {external}")
    for failure in failed_requests:
        if not failure.get("canceled"):
            problems.append(f"request failed: {failure.get('errorText')} (request {failure.get('requestId')})")
    print(
        f"  {page}: MathJax {report['version']}, {report['math']}/{report['math_elements']} formulas typeset, "
        f"{report['fonts_loaded']} math fonts, {len(report['images'])} images, screenshot "
        f"{shot_path.relative_to(ROOT)}"
    )
    for formula in report["wide"]:
        print(f"    note {page}: display formula wider than the text column: {formula!r}")
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
    pages = args.pages or sorted(p.relative_to(HTML).as_posix() for p in (HTML / "book").glob("*.html"))
    # Pages without math (e.g. the bibliography) only need their images and no external requests.
    server, base = serve(HTML)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="gumbel-lite-chromium-") as profile:
        tools = DevTools(find_chromium(), profile)
        try:
            tools.send("Target.setDiscoverTargets", {"discover": False}, timeout=30)
            print(f"browser_check: {len(pages)} page(s) from {HTML} via {base}")
            for page in pages:
                min_math = 0 if page.endswith("references.html") else args.min_math
                problems = check_page(tools, base, page, min_math)
                for problem in problems:
                    print(f"    FAIL {page}: {problem}", file=sys.stderr)
                failures += bool(problems)
        finally:
            tools.close()
            server.shutdown()
    if failures:
        print(f"browser_check: {failures} page(s) failed", file=sys.stderr)
        return 1
    print(f"browser_check: all {len(pages)} page(s) OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
