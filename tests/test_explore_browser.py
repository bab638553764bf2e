"""The explore page in a real browser: headless Chromium, driven over the DevTools protocol, moves a slider.

Chromium talks DevTools over two pipes (``--remote-debugging-pipe``: it reads commands on fd 3 and
writes answers and events on fd 4, as JSON messages ending in a NUL byte), so no WebSocket client is
needed. Skipped where Chromium is not installed (Debian: apt-get install chromium) or cannot start.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import saved_generator

from gan_infogan_plugin.explore import Explorer, ExploreServer, load_runs

# argv: fd to read commands from, fd to write answers to, the browser and its arguments
LAUNCH = """import fcntl, os, sys
read, write = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])  # out of the way of 3 and 4
os.dup2(read, 3)
os.dup2(write, 4)
os.execvp(sys.argv[3], sys.argv[3:])
"""
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 60.0


def find_browser() -> str | None:
    """$CHROMIUM (a name or a path), else the first of BROWSERS on the PATH."""
    names = [os.environ["CHROMIUM"]] if os.environ.get("CHROMIUM") else BROWSERS
    return next(filter(None, map(shutil.which, names)), None)


class DevTools:
    """A Chromium started headless with ``--remote-debugging-pipe``; :meth:`call` sends one command and
    waits for its answer, keeping the events that arrive meanwhile in :attr:`events`."""

    def __init__(self, browser: str, profile: Path) -> None:
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()
        args = ["--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--window-size=1100,800", "about:blank"]
        if os.geteuid() == 0:
            args.insert(0, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        # The pipes become fds 3 and 4 in a small Python launcher (no preexec_fn in a process with threads).
        self.process = subprocess.Popen([sys.executable, "-c", LAUNCH, str(to_browser), str(from_browser), browser, *args],
                                        pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._answers], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._answers, 1 << 20) if ready else b""
            if not chunk:
                raise TimeoutError("Chromium did not answer" if not ready else "Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self._message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def close(self) -> str:
        """Quit the browser; returns the end of what it wrote on stderr."""
        try:
            self.call("Browser.close")
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        os.close(self._commands)
        os.close(self._answers)
        return err.decode(errors="replace")[-500:]


class Page:
    """One tab attached to a :class:`DevTools` session: evaluate JavaScript, click, wait for a condition."""

    def __init__(self, tools: DevTools) -> None:
        self.tools = tools
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Network", "Runtime", "Page"):
            tools.call(f"{domain}.enable", self.session)

    def js(self, expression: str) -> Any:
        result = self.tools.call("Runtime.evaluate", self.session, expression=expression, returnByValue=True,
                                 awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, what: str) -> Any:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            value = self.js(f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()")  # page loading
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; status line: {self.js('$(`status`).textContent')!r}")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.tools.call("Input.dispatchMouseEvent", self.session, type=kind, x=x, y=y, button="left", clickCount=1)

    def events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.tools.events if e.get("method") == method and e.get("sessionId") == self.session]


# The current image's pixels, read back through a canvas (same origin); null while a new image loads
# (use with Page.wait).
PIXELS = """(() => { const img = $('image'); if (!img.complete || img.naturalWidth === 0) return null;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return Array.from(g.getImageData(0, 0, c.width, c.height).data).join(','); })()"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("browser") / "run"
    saved_generator(run / "generator.safetensors", "noise:4,cat:3,cont:2")
    server = ExploreServer(Explorer(load_runs([run])), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    found = find_browser()
    if found is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the browser test needs it")
    tools = DevTools(found, tmp_path_factory.mktemp("chromium-profile"))
    try:
        tools.call("Browser.getVersion")
    except (OSError, TimeoutError) as exc:
        err = tools.close().strip().splitlines()
        pytest.skip(f"Chromium cannot run here ({exc}): {err[-1] if err else 'no message'}")
    yield tools
    tools.close()


@pytest.fixture()
def page(browser):
    """A new tab per test."""
    return Page(browser)


def test_moving_a_slider_changes_the_image(server, page):
    page.tools.call("Page.navigate", page.session, url=server.url)
    page.wait("document.body.dataset.ready === '1' && $('image').complete && $('image').naturalWidth === 28",
              "the first image and the strips")
    assert page.js("document.querySelectorAll('.cell[data-code=c1]').length") == 3  # a button per class
    assert page.js("document.querySelectorAll('input[type=range]').length") == 2  # a slider per continuous code
    before = page.wait(PIXELS, "the first image's pixels")
    first_query = page.js("$('image').dataset.query")
    assert "c2=0.00" in first_query

    box = page.js("(() => { const r = document.querySelector('input[data-code=c2]').getBoundingClientRect();"
                  " return [r.left, r.top, r.width, r.height]; })()")
    page.click(box[0] + 0.9 * box[2], box[1] + box[3] / 2)  # near the right end: c2 about 1.6
    # The slider may pass through several values: wait until the image shown is the one for its final value.
    query = page.wait("(() => { const img = $('image'), q = img.dataset.query;"
                      " const v = Number(document.querySelector('input[data-code=c2]').value).toFixed(2);"
                      " return img.complete && img.naturalWidth === 28 && !q.includes('c2=0.00') && q.includes('c2=' + v) && q; })()",
                      "the image for the new slider value")
    value = float(query.split("c2=")[1].split("&")[0])
    assert 1.0 < value <= 2.0 and page.js("Number(document.querySelector('input[data-code=c2]').value)") == value
    after = page.wait(PIXELS, "the new image's pixels")
    assert after != before and len(after.split(",")) == len(before.split(",")) == 28 * 28 * 4

    responses = [(r["response"]["url"], r["response"]["status"], r["response"]["mimeType"])
                 for r in page.events("Network.responseReceived")]
    moved = [r for r in responses if "/api/image?" in r[0] and f"c2={query.split('c2=')[1].split('&')[0]}" in r[0]]
    assert moved and all(status == 200 and mime == "image/png" for _, status, mime in moved), responses
    assert not [r for r in responses if r[1] >= 400], responses
    assert any("/api/strip?" in url and "code=c3" in url for url, _, _ in responses)  # the other strips follow
    assert page.js("$('status').classList.contains('error')") is False
    assert not page.events("Runtime.exceptionThrown")
    assert not [e for e in page.events("Runtime.consoleAPICalled") if e["type"] == "error"]


def test_the_address_keeps_the_setting(server, page):
    page.tools.call("Page.navigate", page.session, url=server.url + "#run=0&seed=5&c1=2&c2=-1.5")
    query = "run=0&seed=5&c1=2&c2=-1.5&c3=0.00"
    page.wait(f"$('image').dataset.query === '{query}' && document.body.dataset.ready === '1'", "the image of the address")
    assert page.js("location.hash") == f"#{query}"
    assert page.js("$('seed').value") == "5" and page.js("document.querySelector('input[data-code=c2]').value") == "-1.5"
    assert page.js("document.querySelector('.cell.chosen[data-code=c1]').dataset.value") == "2"
