"""The optional LiteLLM arm of bench/relay.py: httpx clients reading the same provider server through
a LiteLLM proxy, the usual self-hosted relay, for comparison. Never a requirement: without LiteLLM the
arm is skipped with a note.

- ``LITELLM_URL`` set (``http://host:port/v1``): a proxy already running, used as it is; its model
  ``gpt-4o-mini`` must lead to a server streaming the same script (the run prints the provider
  server's URL; a proxy started by hand cannot know it beforehand, so this is for a proxy in front
  of a server of your own).
- else ``litellm`` importable: ``litellm --model openai/gpt-4o-mini --api_base <provider>`` is started
  on a free port for the duration of the run.

A module of helpers, not a benchmark (``python -m bench`` skips names with ``_``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def proxy(base_url: str, tmp: Path) -> Iterator[str | None]:
    """The base URL (``…/v1``) of a LiteLLM proxy in front of ``base_url``, or None (a note is printed)."""
    given = os.environ.get("LITELLM_URL")
    if given:
        print(f"LiteLLM arm: the proxy at {given} (it must route gpt-4o-mini to {base_url})", flush=True)
        yield given.rstrip("/")
        return
    if importlib.util.find_spec("litellm") is None:
        print("LiteLLM arm skipped: litellm is not importable and LITELLM_URL is not set", flush=True)
        yield None
        return
    port = _free_port()
    cli = shutil.which("litellm") or str(Path(sys.executable).with_name("litellm"))
    command = [cli, "--model", "openai/gpt-4o-mini", "--api_base", base_url, "--port", str(port)]
    command += ["--host", "127.0.0.1", "--num_workers", "1"]
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "LITELLM_LOG": "ERROR"}
    log = (tmp / "litellm.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                print(f"LiteLLM arm skipped: the proxy exited ({tmp / 'litellm.log'})", flush=True)
                yield None
                return
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                print("LiteLLM arm skipped: the proxy did not start in time", flush=True)
                yield None
                return
            time.sleep(0.5)
        print(f"LiteLLM arm: proxy at {url} in front of {base_url}", flush=True)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
