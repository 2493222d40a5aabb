"""Load a local HTML file in headless Chromium through the DevTools protocol (a pipe, the
standard library only) and record what a reader's browser would: every request it made,
console messages and uncaught exceptions, the page's text, a screenshot."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio")


def find_chromium() -> str | None:
    """The Chromium binary of the system package, or None."""
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


@dataclass
class PageVisit:
    """What loading one page produced."""

    requests: list[str] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    text: str = ""
    screenshot_png: bytes = b""
    evaluated: list[Any] = field(default_factory=list)

    @property
    def console_errors(self) -> list[dict[str, Any]]:
        return [m for m in self.console if m.get("level") in ("error", "warning", "assert")]


class _Pipe:
    """The DevTools protocol over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out;
    messages are JSON terminated by a NUL byte)."""

    def __init__(self, binary: str, profile: Path, width: int, height: int) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        child_fds = {3: to_browser_r, 4: from_browser_w}

        def wire() -> None:  # in the child: the two pipe ends at fds 3 and 4
            for target, fd in child_fds.items():
                os.dup2(fd, target)
                os.set_inheritable(target, True)

        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False)  # fds 3 and 4 must reach the browser
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self._read()
            self.events.append(event)
            if event.get("method") == method:
                return event
        raise TimeoutError(method)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe: "
                                   + self.process.stderr.read().decode(errors="replace")[-2000:])
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        if self.process.stderr:
            self.process.stderr.close()


def visit(path: Path, binary: str, scripts: tuple[str, ...] = (), width: int = 1280,
          height: int = 2000, settle_s: float = 0.5) -> PageVisit:
    """Open ``path`` (a local file) in a fresh headless Chromium profile; returns every
    request URL, console message and exception, ``document.body.innerText``, a
    screenshot of the first ``height`` pixels as loaded, and the value of each of
    ``scripts`` evaluated in the page after the screenshot (in order)."""
    result = PageVisit()
    with tempfile.TemporaryDirectory(prefix="isograph-gpu-chromium-") as profile:
        browser = _Pipe(binary, Path(profile), width, height)
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.send("Target.attachToTarget",
                                   {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Network", "Runtime", "Log"):
                browser.send(f"{domain}.enable", session=session)
            browser.send("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": 1,
                          "mobile": False}, session=session)
            browser.events.clear()
            browser.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
            browser.wait_for("Page.loadEventFired")
            time.sleep(settle_s)
            result.text = browser.send("Runtime.evaluate", {
                "expression": "document.body.innerText", "returnByValue": True},
                session=session)["result"].get("value", "")
            shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
            result.screenshot_png = base64.b64decode(shot["data"])
            for script in scripts:
                result.evaluated.append(browser.send("Runtime.evaluate", {
                    "expression": script, "returnByValue": True},
                    session=session)["result"].get("value"))
            browser.send("Runtime.evaluate", {"expression": "1"}, session=session)
        finally:
            browser.close()
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            result.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            result.console.append({"level": params.get("type"), "text": " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", []))})
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            result.console.append({"level": entry.get("level"), "text": entry.get("text"),
                                   "url": entry.get("url")})
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            result.exceptions.append(str(details.get("exception", {}).get("description")
                                         or details.get("text")))
    return result
