"""Real Daphne processes on loopback ports, sharing the test database.

A test that runs qtap in separate processes must point them at the database pytest-django created,
with its rows committed (``@pytest.mark.django_db(transaction=True)`` or the ``transactional_db``
fixture), and at the same data directory (the session signing key and the generated encryption key
live there). ``subprocess_env()`` builds that environment from the live settings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """The URL of the database this test is using (the test database, once pytest-django made it)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    engine = db["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if engine.endswith(("postgresql", "postgis")):
        user = quote(str(db.get("USER") or ""), safe="")
        password = quote(str(db.get("PASSWORD") or ""), safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{quote(str(db['NAME']), safe='')}"
    raise RuntimeError(f"no URL form for the database engine {engine}")


def uses_postgres() -> bool:
    from django.conf import settings

    return "postgresql" in settings.DATABASES["default"]["ENGINE"]


def redis_url() -> str:
    from django.conf import settings

    return str(getattr(settings, "REDIS_URL", "") or "")


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a qtap process serving this test's database and data directory."""
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "qtap_site.settings",
            "QTAP_DATA_DIR": str(settings.DATA_DIR),
            "DATABASE_URL": database_url(),
            "QTAP_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if redis_url():
        env["REDIS_URL"] = redis_url()
    else:
        env.pop("REDIS_URL", None)
    env.update(extra or {})
    return env


def _daphne() -> list[str]:
    candidate = Path(sys.executable).parent / "daphne"
    if candidate.exists():
        return [str(candidate)]
    return [sys.executable, "-m", "daphne"]


@dataclass
class DaphneProcess:
    """One Daphne serving ``qtap_site.asgi:application`` on 127.0.0.1:<port>."""

    name: str
    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="daphne-", suffix=".log")[1]))

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> DaphneProcess:
        for _attempt in range(3):  # a port taken between free_port() and bind: try another
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [*_daphne(), "-b", "127.0.0.1", "-p", str(self.port), "qtap_site.asgi:application"],
                    cwd=REPO,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready(timeout):
                return self
            if "Address already in use" not in self.logs():
                break
        self.kill()
        raise RuntimeError(f"Daphne {self.name} did not start on port {self.port}:\n{self.logs()[-4000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            try:
                response = httpx.get(self.url("/login/"), timeout=2.0)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            if response.status_code < 500:
                return True
            time.sleep(0.1)
        return False

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a crash (no cleanup runs)."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 5.0) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        self.terminate()
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()


@contextlib.contextmanager
def daphne_processes(count: int, *, env: Mapping[str, str] | None = None) -> Iterator[list[DaphneProcess]]:
    """Start ``count`` Daphne processes with ``subprocess_env(env)`` and stop them afterwards.

    On failure inside the block the processes' logs are printed (pytest shows them with the failure).
    """
    processes = [DaphneProcess(name=chr(ord("A") + i), env=subprocess_env(env)) for i in range(count)]
    try:
        for process in processes:
            process.start()
        yield processes
    except BaseException:
        for process in processes:
            print(f"---- Daphne {process.name} (port {process.port}) log ----\n{process.logs()[-6000:]}")
        raise
    finally:
        for process in processes:
            process.cleanup()
