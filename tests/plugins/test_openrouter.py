"""The OpenRouter plugin: attribution headers, comments, cost, the priced model list, key check."""

from __future__ import annotations

import pytest

from providers import errors
from providers.contract import ModelInfo
from tests.fakes.fixtures import fixture_bytes
from tests.fakes.openai_dialect import FakeOpenAI
from tests.fakes.samples import collect
from tests.plugins.openai_support import FLAVOURS, OPENROUTER_USAGE, hello, make

ROUTER = FLAVOURS["openrouter"]


@pytest.fixture
def fake():
    with FakeOpenAI("openrouter") as server:
        yield server


def test_default_base_url_is_openrouter():
    from providers.factory import create_llm_provider

    assert create_llm_provider("OPENROUTER", api_key=ROUTER.key).base_url == "https://openrouter.ai/api/v1"


def test_the_fake_replays_the_recording_with_its_comment_lines():
    assert fixture_bytes("openrouter_chat_stream.sse").startswith(b": OPENROUTER PROCESSING\n\n")


async def test_recorded_stream_with_comments_gives_text_usage_and_cost(fake):
    result = await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
    assert result.text == "Pebbles and Skipper."
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cost) == OPENROUTER_USAGE
    assert fake.chat_requests[-1].path == "/api/v1/chat/completions"


async def test_attribution_headers_have_defaults(fake, settings, monkeypatch):
    for name in ("QTAP_OPENROUTER_REFERER", "QTAP_OPENROUTER_TITLE"):
        monkeypatch.delenv(name, raising=False)
        if hasattr(settings, name):
            delattr(settings, name)
    await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
    headers = fake.chat_requests[-1].headers
    assert headers["http-referer"] == "http://127.0.0.1:8000/"
    assert headers["x-title"] == headers["x-openrouter-title"] == "qtap"


async def test_attribution_headers_come_from_settings_before_the_environment(fake, settings, monkeypatch):
    monkeypatch.setenv("QTAP_OPENROUTER_TITLE", "from env")
    monkeypatch.setenv("QTAP_OPENROUTER_REFERER", "https://env.example/")
    settings.QTAP_OPENROUTER_TITLE = "Team Chat"
    await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
    headers = fake.chat_requests[-1].headers
    assert headers["x-title"] == headers["x-openrouter-title"] == "Team Chat"
    assert headers["http-referer"] == "https://env.example/"  # no setting: the environment


async def test_models_carry_prices_per_million_tokens_and_context(fake):
    models = {m.id: m for m in await make(ROUTER, fake).list_models()}
    assert set(models) == {"anthropic/claude-sonnet-4", "openai/gpt-3.5-turbo", "openai/gpt-4.1-mini", "openai/gpt-4o"}
    assert models["openai/gpt-4o"] == ModelInfo(
        id="openai/gpt-4o",
        name="OpenAI: GPT-4o",
        context_window=128000,
        max_output_tokens=16384,
        supports_images=True,
        input_price_per_mtok=2.5,
        output_price_per_mtok=10.0,
    )
    assert models["openai/gpt-3.5-turbo"].supports_images is False


async def test_model_list_is_served_stale_when_a_refresh_fails(fake, monkeypatch):
    from providers.base import model_cache

    provider = make(ROUTER, fake)
    first = await provider.list_models()
    monkeypatch.setattr(model_cache, "ttl", 0.0)
    fake.fail_with(503, "no providers available", headers={"retry-after": "0"}, times=3)
    assert await provider.list_models() == first
    assert len([r for r in fake.requests if r.path == "/api/v1/models"]) == 4


async def test_validate_key_reads_the_key_endpoint(fake):
    fake.api_key = ROUTER.key
    await make(ROUTER, fake).validate_key()
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/api/v1/key")]


async def test_validate_key_with_a_wrong_key_is_an_authentication_error(fake):
    fake.api_key = ROUTER.key
    with pytest.raises(errors.AuthenticationError, match="User not found"):
        await make(ROUTER, fake, key="sk-or-v1-wrong").validate_key()


async def test_no_credits_is_quota_exceeded(fake):
    fake.fail_with(402, "Insufficient credits. Add more using https://openrouter.ai/credits")
    with pytest.raises(errors.QuotaExceededError, match="Insufficient credits"):
        await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))


async def test_error_chunk_with_finish_reason_error_raises(fake):
    fake.mid_stream(after=4, kind="error", message="Provider disconnected unexpectedly")
    with pytest.raises(errors.ProviderUnavailableError, match="Provider disconnected unexpectedly") as caught:
        await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
    assert caught.value.status is None  # it came inside a 200 stream


async def test_a_wrapped_upstream_error_says_what_the_upstream_said(fake):
    raw = '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
    body = {
        "error": {
            "message": "Provider returned error",
            "code": 401,
            "metadata": {"raw": raw, "provider_name": "Anthropic"},
        }
    }
    fake.fail_next(401, body)
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(make(ROUTER, fake).stream(hello("anthropic/claude-sonnet-4")))
    assert caught.value.message == "Provider returned error (Anthropic: invalid x-api-key)"


async def test_moderation_refusal_is_a_content_filter(fake):
    body = {
        "error": {
            "code": 403,
            "message": "Input was flagged by moderation",
            "metadata": {"reasons": ["violence"], "flagged_input": "…", "provider_name": "OpenAI"},
        }
    }
    fake.fail_next(403, body)
    with pytest.raises(errors.ContentFilterError, match="flagged by moderation"):
        await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
