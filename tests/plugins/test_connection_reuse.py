"""Every native plugin hands its connection back to the pool after a finished stream, so consecutive
requests skip the TCP (and, in production, TLS) handshake. The OpenAI dialect has its own test."""

from __future__ import annotations

import pytest

from providers.contract import ChatRequest, Message, collect
from providers.factory import create_llm_provider
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.ollama import FakeOllama

KEY = "test-key-not-real-0001"

CASES = [
    ("ANTHROPIC", lambda: FakeAnthropic(api_key=KEY), "claude-haiku-4-5-20251001"),
    ("GOOGLE", lambda: FakeGemini(api_key=KEY), "gemini-2.0-flash"),
    ("OLLAMA", FakeOllama, "llama3.2"),
]


@pytest.mark.parametrize(("provider_name", "make_fake", "model"), CASES, ids=[c[0] for c in CASES])
async def test_consecutive_streams_reuse_one_connection(provider_name, make_fake, model):
    with make_fake() as fake:
        provider = create_llm_provider(provider_name, api_key=KEY, base_url=fake.base_url)
        request = ChatRequest(model=model, messages=(Message("user", "Say just hello"),))
        results = [await collect(provider.stream(request)) for _ in range(3)]
    assert all(result.text for result in results)
    clients = [r.client for r in fake.requests]
    assert len(clients) == 3
    assert len(set(clients)) == 1, f"a new connection per request: {clients}"
