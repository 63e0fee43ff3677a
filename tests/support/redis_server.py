"""Restart the Redis server of REDIS_URL (a loopback one started for the tests), making sure it is
running again afterwards whatever happens."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urlsplit


def _port(redis_url: str) -> int:
    parts = urlsplit(redis_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(f"refusing to restart a Redis that is not on loopback: {parts.hostname}")
    return parts.port or 6379


def ping(port: int) -> bool:
    result = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"], capture_output=True, text=True, timeout=5
    )
    return result.stdout.strip() == "PONG"


def stop(port: int) -> None:
    subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "shutdown", "nosave"], capture_output=True, timeout=10
    )
    deadline = time.monotonic() + 10
    while ping(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis on port {port} did not stop")
        time.sleep(0.05)


def start(port: int) -> None:
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
        capture_output=True,
        timeout=10,
    )
    deadline = time.monotonic() + 10
    while not ping(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis on port {port} did not start")
        time.sleep(0.05)


def available() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


@contextlib.contextmanager
def restartable(redis_url: str) -> Iterator[int]:
    """Yield the port; whatever the block does to the server, it is running when the block ends."""
    port = _port(redis_url)
    try:
        yield port
    finally:
        if not ping(port):
            start(port)


def restart(port: int, down_for: float = 0.0) -> None:
    stop(port)
    if down_for:
        time.sleep(down_for)
    start(port)
