"""The local Ollama API is checked against the official ``ollama`` client."""

from __future__ import annotations

import ollama
import pytest

from tests.fakes.ollama import PROMPT_EVAL_COUNT, REPLY, THINKING, TOKENS, FakeOllama
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
