"""The openai-compatible plugin against a real model: SmolLM2-135M-Instruct served by llama-cpp-python
on a free loopback port, and ``manage.py local_model`` pointing a profile at it."""

from __future__ import annotations

import asyncio
import socket
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from providers import local_model
from providers.contract import ChatRequest, Message, TextDelta
from providers.factory import create_llm_provider
from tests.fakes.samples import collect

pytestmark = pytest.mark.local_model


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def model_server(tmp_path_factory):
    if not local_model.llama_cpp_available():
        reason = "llama_cpp cannot be imported: pip install -r requirements-local-model.txt to run the live model tests"
        print(f"\nSKIPPED local model tests: {reason}", file=sys.stderr)
        pytest.skip(reason)
    port = _free_port()
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("wb")
    process = local_model.start_server(port=port, n_ctx=1024, log=log)
    url = local_model.base_url("127.0.0.1", port)
    try:
        local_model.wait_until_ready(url, process=process, timeout=120)
        yield url, port
    finally:
        local_model.stop_server(process)
        log.close()


def _established_to(port: int) -> int:
    """Open TCP connections from this machine to ``port`` (client side), read from /proc/net/tcp."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":  # 01 = ESTABLISHED
                count += 1
    return count


def ask(text: str, max_tokens: int = 32) -> ChatRequest:
    return ChatRequest(
        model=local_model.MODEL_ALIAS,
        messages=(Message("system", "You are a helpful assistant."), Message("user", text)),
        max_tokens=max_tokens,
        temperature=0.0,
    )


def test_the_model_ships_in_the_package():
    gguf = local_model.find_gguf()
    assert gguf.suffix == ".gguf"
    assert gguf.stat().st_size > 50_000_000


async def test_a_real_streamed_reply(model_server):
    url, _ = model_server
    provider = create_llm_provider("OPENAI_COMPATIBLE", base_url=url)
    result = await collect(provider.stream(ask("Say hello in five words.")))
    assert result.text.strip()
    assert result.finish in ("stop", "length")
    if result.usage is not None:  # llama-cpp-python's server sends no usage chunk in streams today
        assert result.usage.output_tokens and result.usage.output_tokens > 0
    assert len([e for e in result.events if isinstance(e, TextDelta)]) > 1


async def test_length_limit_is_reported(model_server):
    url, _ = model_server
    provider = create_llm_provider("OPENAI_COMPATIBLE", base_url=url)
    result = await collect(provider.stream(ask("Write a long story about a pelican.", max_tokens=5)))
    assert result.finish == "length"


async def test_list_models_and_validate(model_server):
    url, _ = model_server
    provider = create_llm_provider("OPENAI_COMPATIBLE", base_url=url)
    assert local_model.MODEL_ALIAS in [m.id for m in await provider.list_models()]
    await provider.validate_key()


async def test_aclose_closes_the_connection_and_the_server_moves_on(model_server):
    url, port = model_server
    provider = create_llm_provider("OPENAI_COMPATIBLE", base_url=url)
    stream = provider.stream(ask("Repeat the word pelican five hundred times.", max_tokens=900))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    assert _established_to(port) >= 1
    await stream.aclose()
    for _ in range(20):
        if _established_to(port) == 0:
            break
        await asyncio.sleep(0.05)
    assert _established_to(port) == 0
    # The server stopped that generation: the next request is answered at once, not after 900 tokens.
    result = await asyncio.wait_for(collect(provider.stream(ask("Say hi.", max_tokens=8))), timeout=10)
    assert result.text


@pytest.mark.django_db
def test_command_creates_then_updates_the_profile(model_server, django_user_model):
    _, port = model_server
    admin = django_user_model.objects.create_superuser(username="root", password="a long enough password")
    out = StringIO()
    call_command("local_model", "--port", str(port), "--no-start", stdout=out)
    assert 'Created profile "Local SmolLM2" for root' in out.getvalue()
    profile = admin.connection_profiles.get(name="Local SmolLM2")
    assert profile.plugin == "qtap-plugin-openai-compatible"
    assert profile.base_url == f"http://127.0.0.1:{port}/v1"
    assert profile.model == local_model.MODEL_ALIAS
    assert profile.api_key is None
    assert profile.is_default
    call_command("local_model", "--port", str(port), "--no-start", "--user", "root", stdout=out)
    assert "Updated profile" in out.getvalue()
    assert admin.connection_profiles.filter(name="Local SmolLM2").count() == 1


@pytest.mark.django_db
def test_command_names_what_is_missing(django_user_model):
    with pytest.raises(CommandError, match="no superuser"):
        call_command("local_model", "--no-start", stdout=StringIO())
    django_user_model.objects.create_superuser(username="root", password="a long enough password")
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("local_model", "--no-start", "--user", "nobody", stdout=StringIO())
    with pytest.raises(CommandError, match="not ready"):
        call_command("local_model", "--no-start", "--port", str(_free_port()), "--timeout", "0.5", stdout=StringIO())


def test_make_local_model_serves_until_stopped_and_takes_the_server_down(model_server, tmp_path):
    """The command as ``make local-model`` runs it: in the foreground, in its own process and database."""
    import os
    import signal
    import subprocess
    import time

    import httpx

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "QTAP_DATA_DIR": str(tmp_path), "QTAP_LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, str(root / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=root)
    subprocess.run([*manage, "ensure_first_user"], env=env, check=True, cwd=root, capture_output=True)
    port = _free_port()
    command = subprocess.Popen(
        [*manage, "local_model", "--port", str(port), "--n-ctx", "512"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = command.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        assert any('Created profile "Local SmolLM2" for admin' in line for line in lines), lines
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=20) == 0
    finally:
        if command.poll() is None:
            command.kill()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
