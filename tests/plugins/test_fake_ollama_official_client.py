"""The local Ollama API is checked against the official ``ollama`` client."""

from __future__ import annotations

import ollama
import pytest

from tests.fakes.ollama import (
    GPT_OSS_THINKING,
    GPT_OSS_TOKENS,
    PROMPT_EVAL_COUNT,
    REPLY,
    THINKING,
    TOKENS,
    FakeOllama,
)
from tests.fakes.stream_faults import StreamFault

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture
def fake():
    with FakeOllama() as server:
        yield server


async def test_chat_stream_reads_text_thinking_and_counts(fake):
    fake.reply = "thinking"
    text, thinking, last = "", "", None
    async for part in await ollama.AsyncClient(host=fake.origin).chat(model="llama3.2", messages=MESSAGES, stream=True):
        text += part.message.content or ""
        thinking += part.message.thinking or ""
        last = part
    assert text == REPLY
    assert thinking == "".join(THINKING)
    assert last.done and last.done_reason == "stop"
    assert (last.prompt_eval_count, last.eval_count) == (PROMPT_EVAL_COUNT, len(TOKENS) + len(THINKING))


async def test_non_streaming_chat_and_listing(fake):
    client = ollama.AsyncClient(host=fake.origin)
    reply = await client.chat(model="llama3.2", messages=MESSAGES, stream=False)
    assert reply.message.content == REPLY
    listed = await client.list()
    assert [m.model for m in listed.models] == ["llama3.2:latest", "llava:7b"]


async def test_errors_as_the_client_sees_them(fake):
    client = ollama.AsyncClient(host=fake.origin)
    with pytest.raises(ollama.ResponseError) as missing:
        await client.chat(model="llama9", messages=MESSAGES, stream=False)
    assert missing.value.status_code == 404 and "not found" in missing.value.error

    fake.stream_fault = StreamFault("error", after=2)
    with pytest.raises(ollama.ResponseError, match="error was encountered while running the model"):
        async for _part in await client.chat(model="llama3.2", messages=MESSAGES, stream=True):
            pass


async def chat_stream(client: ollama.AsyncClient, model: str, **kwargs) -> tuple[str, str]:
    text, thinking = "", ""
    async for part in await client.chat(model=model, messages=MESSAGES, stream=True, **kwargs):
        text += part.message.content or ""
        thinking += part.message.thinking or ""
    return text, thinking


async def test_think_levels_and_on_off_as_the_client_sends_and_reads_them(fake):
    client = ollama.AsyncClient(host=fake.origin)
    assert await chat_stream(client, "gpt-oss:20b", think="high") == (
        "".join(GPT_OSS_TOKENS),
        "".join(GPT_OSS_THINKING),
    )
    assert fake.requests[-1].json["think"] == "high"

    assert await chat_stream(client, "qwen3:8b", think=False) == ("".join(GPT_OSS_TOKENS), "")
    assert fake.requests[-1].json["think"] is False

    reply = await client.chat(model="gpt-oss:20b", messages=MESSAGES, think="low", stream=False)
    assert (reply.message.content, reply.message.thinking) == ("".join(GPT_OSS_TOKENS), "".join(GPT_OSS_THINKING))

    with pytest.raises(ollama.ResponseError) as refused:
        await client.chat(model="llama3.2", messages=MESSAGES, think=True, stream=False)
    assert refused.value.status_code == 400 and refused.value.error == '"llama3.2" does not support thinking'


async def test_the_hosted_api_wants_the_bearer_key(monkeypatch):
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    key = "ollama-cloud-official-client-000001"
    with FakeOllama(api_key=key) as cloud:
        keyed = ollama.AsyncClient(host=cloud.origin, headers={"Authorization": f"Bearer {key}"})
        assert (await keyed.chat(model="llama3.2", messages=MESSAGES, stream=False)).message.content == REPLY
        assert cloud.requests[-1].headers["authorization"] == f"Bearer {key}"
        with pytest.raises(ollama.ResponseError) as refused:
            await ollama.AsyncClient(host=cloud.origin).chat(model="llama3.2", messages=MESSAGES, stream=False)
        assert refused.value.status_code == 401
