"""A minimal headless-Chromium driver over the DevTools protocol on a pipe (``--remote-debugging-pipe``: the
browser reads JSON commands on fd 3 and writes replies and events on fd 4, each message ending in a NUL byte).
No network port, no extra package."""

from __future__ import annotations

import base64
import json
import os
import select
import shlex
import shutil
import subprocess
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian's ``chromium`` first), or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessChromium:
    """``with HeadlessChromium(exe, profile_dir) as browser: page = browser.open(url)``; commands with
    :meth:`send`, events collected in :attr:`events`."""

    def __init__(
        self, executable: str, profile_dir: Path, *, timeout_s: float = 60.0, window: tuple[int, int] = (1280, 900)
    ):
        self.timeout_s = timeout_s
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()
        args = [
            executable,
            "--headless",
            "--disable-gpu",
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--mute-audio",
            f"--window-size={window[0]},{window[1]}",
            f"--user-data-dir={profile_dir}",
        ]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run sandboxed as root
        # the shell moves the pipe ends onto fds 3 and 4 (Popen would close them after a preexec_fn dup2)
        closes = " ".join(f"{fd}>&-" for fd in (to_browser_r, from_browser_w) if fd not in (3, 4))
        command = f"exec {shlex.join(args)} about:blank 3<&{to_browser_r} 4>&{from_browser_w} {closes}"
        self.stderr_path = Path(profile_dir).with_suffix(".stderr.txt")
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            ["bash", "-c", command],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._next_id, self.events = b"", 0, []

    # ------------------------------------------------------------------------------------------ protocol
    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command and return its ``result``; a protocol error raises RuntimeError."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        reply = self.wait_for(lambda m, i=self._next_id: m.get("id") == i)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, predicate) -> dict:
        """The first message (already received events included) matching ``predicate``."""
        for m in self.events:
            if predicate(m):
                self.events.remove(m)
                return m
        deadline = time.monotonic() + self.timeout_s
        while True:
            m = self._read(deadline)
            if predicate(m):
                return m
            self.events.append(m)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply from Chromium in {self.timeout_s} s (stderr: {self.stderr_path})")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited (stderr: {self.stderr_path})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # ------------------------------------------------------------------------------------------- pages
    def open(self, url: str) -> str:
        """A new tab with console, log and page events enabled, navigated to ``url`` and loaded; its session."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)
        return session

    def evaluate(self, session: str, expression: str):
        """The value of a JavaScript expression (promises awaited)."""
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, session=session
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session: str) -> bytes:
        """PNG bytes of the whole page."""
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)[
            "data"
        ]
        return base64.b64decode(data)

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (e.g. failed resource loads) so far."""
        errors = []
        for m in self.events:
            p = m.get("params", {})
            if m.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif m.get("method") == "Runtime.exceptionThrown":
                details = p.get("exceptionDetails", {})
                errors.append("exception: " + str(details.get("exception", {}).get("description") or details))
            elif m.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return errors

    # ------------------------------------------------------------------------------------------- cleanup
    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        self._stderr.close()

    def __enter__(self) -> "HeadlessChromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
