"""A live qtap for the browser tests: Daphne serving ``qtap_site.asgi:application`` (as ``make run``
does, static files included) in a subprocess on a free loopback port, on this test's database and
data directory; and Debian's Chromium driven by Playwright.

Chromium is only ever launched from /usr/bin/chromium; no browser is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import REPO, free_port, subprocess_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct horse battery"
RESULTS = REPO / "test-results" / "ui"


@dataclass
class LiveServer:
    origin: str
    proc: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return self.origin + path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def live_server(extra_env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    env = subprocess_env(extra_env)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the server must keep Django's async-safety checks
    log = Path(tempfile.mkstemp(prefix="qtap-ui-", suffix=".log")[1])
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "qtap_site.asgi:application",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the live server did not start:\n{server.logs()[-4000:]}")
            try:
                if httpx.get(server.url("/login/"), timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield server
    except BaseException:
        print(f"---- live server log ----\n{server.logs()[-6000:]}")
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.unlink(missing_ok=True)


def launch_chromium(playwright: Any) -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (make browser)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class Shots:
    """Numbered screenshots of one test, in test-results/ui/<test name>/."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.folder = RESULTS / re.sub(r"[^\w.-]+", "_", name)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def __call__(self, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def sign_in(page: Any, server: LiveServer, username: str = "alice") -> None:
    page.goto(server.url("/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url("/"))
