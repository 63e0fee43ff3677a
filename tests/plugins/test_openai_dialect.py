"""Behaviour all five OpenAI-dialect plugins share, each against its own flavour of the local
server over real sockets, built through providers.factory with the default retry policy."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from providers import errors
from providers.contract import Attachment, ChatRequest, Message, ReasoningDelta, ReasoningOptions, TextDelta
from providers.http import Timeouts
from providers.openai_format import build_chat_body
from tests.fakes.openai_dialect import FakeOpenAI
from tests.fakes.samples import (
    assert_no_secret,
    cancel_after_first_text,
    close_after_first_text,
    collect,
    debug_logging,
    png_bytes,
    server_saw_disconnect,
)
from tests.plugins.openai_support import CHAT_COMPLETIONS, FAST_RETRY, FLAVOURS, hello, make, make_direct

pytestmark = pytest.mark.parametrize("name", list(FLAVOURS))

# A model of each flavour that reasons (for the generic servers: one a server may host).
REASONING_MODEL = {
    "openai": "o3-mini",
    "grok": "grok-3-mini",
    "gab-ai": "arya",
    "openrouter": "anthropic/claude-sonnet-4.5",
    "openai-compatible": "qwen3-8b",
}


@pytest.fixture
def fake(name):
    with FakeOpenAI(FLAVOURS[name].fake) as server:
        yield server


async def test_streams_the_recorded_reply(name, fake):
    flavour = FLAVOURS[name]
    result = await collect(make(flavour, fake).stream(hello()))
    assert result.text == flavour.recorded_text
    assert (result.usage.input_tokens, result.usage.output_tokens) == flavour.recorded_usage
    assert result.finish == "stop"
    assert len([e for e in result.events if isinstance(e, TextDelta)]) > 3  # arrived in pieces


async def test_complete_folds_the_stream(name, fake):
    result = await make(FLAVOURS[name], fake).complete(hello())
    assert result.text == FLAVOURS[name].recorded_text
    assert result.finish_reason == "stop"
    assert result.usage is not None


async def test_request_carries_system_prompt_parameters_and_key(name, fake):
    flavour = FLAVOURS[name]
    request = ChatRequest(
        model="gpt-4o-mini",
        options=CHAT_COMPLETIONS,
        messages=(
            Message("system", "Be terse."),
            Message("user", "Hi"),
            Message("assistant", "Hello."),
            Message("user", "Again"),
        ),
        temperature=0.3,
        top_p=0.9,
        max_tokens=64,
        stop=("END", "STOP"),
    )
    await collect(make(flavour, fake).stream(request))
    sent = fake.chat_requests[-1]
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"},
    ]
    assert sent.json["temperature"] == 0.3
    assert sent.json["top_p"] == 0.9
    assert sent.json["max_tokens"] == 64
    assert "max_completion_tokens" not in sent.json
    assert sent.json["stop"] == ["END", "STOP"]
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.headers["authorization"] == f"Bearer {flavour.key}"
    assert sent.headers["content-type"] == "application/json"


async def test_unset_parameters_are_not_sent(name, fake):
    await collect(make(FLAVOURS[name], fake).stream(hello()))
    body = fake.chat_requests[-1].json
    for key in ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop"):
        assert key not in body


async def test_wrong_key_is_an_authentication_error_with_the_upstream_message(name, fake):
    fake.api_key = "the-right-key"
    status, _, message = fake.bad_key_answer()
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(make(FLAVOURS[name], fake).stream(hello()))
    assert caught.value.message == message
    assert caught.value.status == status
    assert len(fake.requests) == 1  # not retried


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, errors.InvalidRequestError),
        (401, errors.AuthenticationError),
        (402, errors.QuotaExceededError),
        (403, errors.PermissionDeniedError),
        (404, errors.ModelNotFoundError),
    ],
)
async def test_client_errors_map_to_their_class_and_are_not_retried(name, fake, status, expected):
    message = fake.fail_with(status, f"upstream says no ({status})")
    with pytest.raises(expected) as caught:
        await collect(make(FLAVOURS[name], fake).stream(hello()))
    assert type(caught.value) is expected
    assert caught.value.message == message
    assert caught.value.status == status
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, errors.RateLimitError),
        (500, errors.ProviderUnavailableError),
        (503, errors.ProviderUnavailableError),
        (529, errors.OverloadedError),
    ],
)
async def test_retryable_errors_are_retried_twice_then_raised(name, fake, status, expected):
    message = fake.fail_with(status, f"busy ({status})", headers={"retry-after": "0"}, times=3)
    with pytest.raises(expected) as caught:
        await collect(make(FLAVOURS[name], fake).stream(hello()))
    assert caught.value.message == message
    assert caught.value.retryable
    assert len(fake.chat_requests) == 3  # the first try and two retries


@pytest.mark.parametrize("status", [429, 500, 503, 529])
async def test_retryable_error_before_the_first_byte_then_success(name, fake, status):
    fake.fail_with(status, headers={"retry-after": "0.2"})
    started = time.monotonic()
    result = await collect(make(FLAVOURS[name], fake).stream(hello()))
    assert time.monotonic() - started >= 0.2  # retry-after honoured
    assert result.text == FLAVOURS[name].recorded_text
    assert len(fake.chat_requests) == 2


async def test_server_error_without_retry_after_backs_off_then_succeeds(name, fake):
    fake.fail_with(500)
    result = await collect(make(FLAVOURS[name], fake).stream(hello()))
    assert result.finish == "stop"
    assert len(fake.chat_requests) == 2


async def test_error_event_mid_stream_raises_with_its_message(name, fake):
    fake.mid_stream(after=3, kind="error", message="Provider disconnected unexpectedly")
    seen: list[str] = []
    with pytest.raises(errors.ProviderUnavailableError) as caught:
        async for event in make(FLAVOURS[name], fake).stream(hello()):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert caught.value.message == "Provider disconnected unexpectedly"
    assert seen  # text before the error still arrived
    assert len(fake.chat_requests) == 1  # never retried after the first byte


async def test_rate_limit_event_mid_stream_keeps_its_kind(name, fake):
    fake.mid_stream(after=2, kind="error", message="Rate limit reached", code="rate_limit_exceeded")
    with pytest.raises(errors.RateLimitError, match="Rate limit reached"):
        await collect(make(FLAVOURS[name], fake).stream(hello()))


async def test_malformed_chunk_is_a_protocol_error(name, fake):
    fake.mid_stream(after=3, kind="malformed")
    with pytest.raises(errors.ProtocolError, match="malformed JSON"):
        await collect(make(FLAVOURS[name], fake).stream(hello()))


async def test_connection_dropped_mid_stream_is_a_protocol_error(name, fake):
    fake.mid_stream(after=3, kind="drop")
    with pytest.raises(errors.ProtocolError, match="closed mid-stream"):
        await collect(make(FLAVOURS[name], fake).stream(hello()))


async def test_stall_longer_than_the_read_timeout_is_a_timeout(name, fake):
    fake.mid_stream(after=3, kind="stall", seconds=5)
    provider = make_direct(FLAVOURS[name], fake, timeouts=Timeouts(read=0.3), retry=FAST_RETRY)
    started = time.monotonic()
    with pytest.raises(errors.ProviderTimeoutError, match="stalled"):
        await collect(provider.stream(hello()))
    assert time.monotonic() - started < 3
    assert await asyncio.to_thread(fake.disconnected.wait, 1.0)


async def test_aclose_closes_the_upstream_at_once(name, fake):
    fake.synthetic(500, delay=0.02)
    await close_after_first_text(make(FLAVOURS[name], fake).stream(hello()))
    assert await server_saw_disconnect(fake)


async def test_cancelling_the_task_closes_the_upstream(name, fake):
    fake.synthetic(500, delay=0.02)
    await cancel_after_first_text(make(FLAVOURS[name], fake).stream(hello()))
    assert await server_saw_disconnect(fake)


async def test_long_stream_arrives_whole(name, fake):
    fake.synthetic(2000)
    result = await collect(make(FLAVOURS[name], fake).stream(hello()))
    assert result.text == "tok " * 2000
    assert result.usage.output_tokens == 2000


async def test_refused_attachment_fails_before_any_request_naming_the_file(name, fake):
    # No plugin of the five takes a spreadsheet; each refuses it before opening a connection.
    sheet = Attachment("budget.xlsx", "application/vnd.ms-excel", b"PK\x03\x04data")
    request = ChatRequest(
        model="gpt-4o-mini", messages=(Message("user", "see file", (sheet,)),), options=CHAT_COMPLETIONS
    )
    with pytest.raises(errors.UnsupportedAttachmentError, match=r"budget\.xlsx"):
        await collect(make(FLAVOURS[name], fake).stream(request))
    assert fake.requests == []


async def test_oversized_or_unaccepted_image_fails_before_any_request(name, fake):
    provider = make(FLAVOURS[name], fake)
    support = provider.config.attachment_support
    data = png_bytes() + b"\0" * ((support.max_bytes or 0) + 1 - len(png_bytes())) if support.supported else png_bytes()
    request = ChatRequest(
        model="gpt-4o-mini",
        messages=(Message("user", "look", (Attachment("big.png", "image/png", data),)),),
        options=CHAT_COMPLETIONS,
    )
    with pytest.raises(errors.UnsupportedAttachmentError, match=r"big\.png"):
        await collect(provider.stream(request))
    assert fake.requests == []


async def test_models_are_listed_once_then_served_from_the_cache(name, fake):
    provider = make(FLAVOURS[name], fake)
    first = await provider.list_models()
    second = await provider.list_models()
    assert first == second
    assert first and all(m.id for m in first)
    assert len([r for r in fake.requests if r.path.endswith("/models")]) == 1


async def test_validate_key_accepts_the_right_key_and_names_a_wrong_one(name, fake):
    flavour = FLAVOURS[name]
    fake.api_key = flavour.key
    await make(flavour, fake).validate_key()
    status, _, message = fake.bad_key_answer()
    with pytest.raises(errors.AuthenticationError) as caught:
        await make(flavour, fake, key="wrong-key-value").validate_key()
    assert caught.value.message == message
    assert caught.value.status == status
    assert all(r.method == "GET" for r in fake.requests)  # never a paid generation


async def test_the_key_never_appears_in_errors_logs_or_repr(name, fake, caplog):
    debug_logging(caplog)
    flavour = FLAVOURS[name]
    provider = make(flavour, fake)
    await collect(provider.stream(hello()))
    fake.fail_with(401, "Incorrect API key provided")
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(provider.stream(hello()))
    fake.mid_stream(after=2, kind="drop")
    with pytest.raises(errors.ProtocolError) as dropped:
        await collect(provider.stream(hello()))
    assert "WARNING" in caplog.text or any(r.levelname == "WARNING" for r in caplog.records)
    assert_no_secret(
        flavour.key, caplog.text, str(caught.value), repr(caught.value), repr(provider), str(dropped.value)
    )


async def test_consecutive_streams_reuse_one_pooled_connection(name, fake):
    provider = make(FLAVOURS[name], fake)
    for _ in range(3):
        await collect(provider.stream(hello()))
    assert len(fake.clients) == 3
    assert len(set(fake.clients)) == 1  # the body was read to its end after [DONE], so no new handshake


async def test_a_body_left_open_after_done_does_not_hold_the_reply(name, fake):
    fake.reply(["all", " here"])
    fake.mid_stream(after=len(fake.chunks), kind="stall", seconds=10)
    started = time.monotonic()
    result = await collect(make(FLAVOURS[name], fake).stream(hello()))
    assert result.text == "all here"
    assert time.monotonic() - started < 3


async def test_usage_reads_cached_cache_write_and_reasoning_tokens(name, fake):
    fake.reply(["Hi"], usage=(120, 30), cached=100, cache_write=20, reasoning_tokens=12)
    usage = (await collect(make(FLAVOURS[name], fake).stream(hello()))).usage
    assert usage.input_tokens == 120  # cached ones included, as the dialect counts them
    assert (usage.cached_input_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (100, 20, 12)


async def test_usage_without_details_leaves_them_unknown(name, fake):
    fake.reply(["Hi"], usage=(5, 1))
    usage = (await collect(make(FLAVOURS[name], fake).stream(hello()))).usage
    assert (usage.cached_input_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (None, None, None)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_deltas_arrive_in_order_before_the_text(name, fake, field):
    fake.reply(["4"], reasoning=["Two plus two", " is four."], reasoning_field=field)
    result = await collect(make(FLAVOURS[name], fake).stream(hello()))
    deltas = [(type(e), e.text) for e in result.events if isinstance(e, TextDelta | ReasoningDelta)]
    assert deltas == [(ReasoningDelta, "Two plus two"), (ReasoningDelta, " is four."), (TextDelta, "4")]


async def test_the_provider_default_sends_no_reasoning_knob(name, fake):
    await collect(make(FLAVOURS[name], fake).stream(hello(REASONING_MODEL[name])))
    body = fake.chat_requests[-1].json
    assert "reasoning" not in body
    assert "reasoning_effort" not in body


async def test_a_dialect_that_takes_reasoning_effort_sends_the_effort(name, fake):
    dialect = make(FLAVOURS[name], fake).dialect
    request = hello(REASONING_MODEL[name], reasoning=ReasoningOptions(effort="low"))
    assert build_chat_body(request, replace(dialect, reasoning_effort=True))["reasoning_effort"] == "low"
    assert "reasoning_effort" not in build_chat_body(request, replace(dialect, reasoning_effort=False))
    assert "reasoning_effort" not in build_chat_body(
        hello(REASONING_MODEL[name]), replace(dialect, reasoning_effort=True)
    )


async def test_a_dialect_that_takes_only_an_effort_refuses_a_budget_before_any_request(name, fake):
    provider = make(FLAVOURS[name], fake)

    class EffortOnly(type(provider)):  # type: ignore[misc]
        dialect = replace(provider.dialect, reasoning_effort=True)

    effort_only = EffortOnly(provider.manifest, api_key=FLAVOURS[name].key, base_url=fake.base_url)
    request = hello(REASONING_MODEL[name], reasoning=ReasoningOptions(budget_tokens=2048))
    with pytest.raises(errors.InvalidRequestError, match=r"takes a reasoning effort, not a thinking budget"):
        effort_only.chat_body(request)
    assert fake.requests == []
