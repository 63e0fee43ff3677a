"""The Anthropic plugin against a local Messages API that replays recorded streams over real sockets."""

from __future__ import annotations

import base64
import json
import time

import pytest

from providers import errors
from providers.contract import Attachment, ChatRequest, Message, ProviderState, ReasoningOptions, TextDelta, Usage
from providers.factory import create_llm_provider
from providers.http import Timeouts
from tests.fakes.anthropic import FIXTURES, TEXTS, USAGE, FakeAnthropic, error_body, long_text
from tests.fakes.fixtures import fixture_bytes
from tests.fakes.samples import (
    FAST_RETRY,
    PDF_BYTES,
    assert_no_secret,
    cancel_after_first_text,
    close_after_first_text,
    collect,
    debug_logging,
    pdf_attachment,
    png_bytes,
    server_saw_disconnect,
)
from tests.fakes.stream_faults import StreamFault

KEY = "sk-ant-api03-Zx9secretvalue-for-tests-0001"
MODEL = "claude-haiku-4-5-20251001"


@pytest.fixture
def fake():
    with FakeAnthropic(api_key=KEY) as server:
        yield server


def make_provider(fake: FakeAnthropic, key: str | None = KEY, **kwargs):
    provider = create_llm_provider("ANTHROPIC", api_key=key, base_url=fake.base_url)
    provider.retry = FAST_RETRY
    for name, value in kwargs.items():
        setattr(provider, name, value)
    return provider


def hello(**kwargs) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=(Message("user", "Say just hello"),), **kwargs)


# ---- the happy paths ----------------------------------------------------------------------------


async def test_streams_the_recorded_reply_with_usage_and_finish(fake):
    result = await collect(make_provider(fake).stream(hello()))

    assert result.text == TEXTS["text"]
    assert (result.usage.input_tokens, result.usage.output_tokens) == USAGE["text"]
    assert result.finish == "stop"
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.json == {
        "model": MODEL,
        "max_tokens": 8192,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say just hello"}]}],
        "stream": True,
    }


async def test_thinking_deltas_become_reasoning(fake):
    fake.reply = "thinking"
    result = await collect(make_provider(fake).stream(hello()))

    assert result.text == TEXTS["thinking"]
    assert result.reasoning.startswith("The user wants two names for a pet pelican")
    assert result.reasoning.endswith("Let me give two brief, catchy names:")
    assert (result.usage.input_tokens, result.usage.output_tokens) == USAGE["thinking"]
    # reasoning arrives before the answer, as the model produced it
    kinds = [type(e).__name__ for e in result.events]
    assert kinds.index("ReasoningDelta") < kinds.index("TextDelta")


async def test_complete_folds_the_stream(fake):
    result = await make_provider(fake).complete(hello())
    assert (result.text, result.finish_reason, result.model) == ("Hello", "stop", MODEL)


async def test_request_shape_system_merging_parameters_and_attachments(fake):
    png = png_bytes()
    request = ChatRequest(
        model=MODEL,
        messages=(
            Message("system", "You are terse."),
            Message("system", "Answer in English."),
            Message("user", "Look at this", attachments=(Attachment("pelican.png", "image/png", png),)),
            Message("user", "and this report", attachments=(pdf_attachment(),)),
            Message("assistant", "Sure."),
            Message("user", "Summarise both"),
            Message("assistant", "Summary:  \n"),
        ),
        temperature=1.5,
        top_p=0.5,
        max_tokens=300,
        stop=("\n\nHuman:", "END"),
    )
    await collect(make_provider(fake).stream(request))

    body = fake.requests[-1].json
    assert body["system"] == "You are terse.\n\nAnswer in English."
    assert body["max_tokens"] == 300
    assert body["temperature"] == 1.0  # clamped to Anthropic's range
    assert "top_p" not in body  # never both: temperature wins
    assert body["stop_sequences"] == ["\n\nHuman:", "END"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]
    first = body["messages"][0]["content"]
    assert first == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()},
        },
        {"type": "text", "text": "Look at this"},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(PDF_BYTES).decode()},
        },
        {"type": "text", "text": "and this report"},
    ]
    assert body["messages"][-1]["content"] == [{"type": "text", "text": "Summary:"}]  # prefill without trailing space


async def test_top_p_alone_is_sent_and_old_models_get_a_smaller_default(fake):
    request = ChatRequest(model="claude-3-haiku-20240307", messages=(Message("user", "hi"),), top_p=0.9)
    await collect(make_provider(fake).stream(request))

    body = fake.requests[-1].json
    assert body["top_p"] == 0.9
    assert "temperature" not in body
    assert body["max_tokens"] == 4096


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "other"),
        ("model_context_window_exceeded", "other"),
    ],
)
async def test_stop_reasons_map_to_finish_reasons(fake, stop_reason, finish):
    fake.long_tokens, fake.stop_reason = 3, stop_reason
    result = await collect(make_provider(fake).stream(hello()))
    assert result.finish == finish
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 3)


# ---- errors before the stream -------------------------------------------------------------------


async def test_bad_key_is_an_authentication_error_with_the_upstream_message(fake):
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(make_provider(fake, key="sk-ant-api03-wrong-key-000000000000").stream(hello()))
    assert caught.value.status == 401
    assert "invalid x-api-key" in caught.value.message
    assert len(fake.requests) == 1  # never retried


async def test_missing_key_fails_before_any_request(fake):
    with pytest.raises(errors.AuthenticationError):
        await collect(make_provider(fake, key=None).stream(hello()))
    assert fake.requests == []


@pytest.mark.parametrize(
    ("status", "error_type", "message", "expected"),
    [
        (400, "invalid_request_error", "messages: roles must alternate", errors.InvalidRequestError),
        (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", errors.ContextLengthError),
        (402, "billing_error", "Your credit balance is too low", errors.QuotaExceededError),
        (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
            errors.PermissionDeniedError,
        ),
        (404, "not_found_error", "model: claude-nope", errors.ModelNotFoundError),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", errors.InvalidRequestError),
    ],
)
async def test_http_errors_map_to_the_documented_classes(fake, status, error_type, message, expected):
    fake.fail_next(status, error_body(error_type, message))
    with pytest.raises(expected) as caught:
        await collect(make_provider(fake).stream(hello()))
    assert type(caught.value) is expected
    assert caught.value.status == status
    assert caught.value.message == message
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "error_type", "message", "expected"),
    [
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            errors.RateLimitError,
        ),
        (500, "api_error", "Internal server error", errors.ProviderUnavailableError),
        (529, "overloaded_error", "Overloaded", errors.OverloadedError),
    ],
)
async def test_retryable_errors_are_retried_twice_then_raised(fake, status, error_type, message, expected):
    fake.fail_next(status, error_body(error_type, message), headers={"retry-after": "0"}, times=3)
    with pytest.raises(expected) as caught:
        await collect(make_provider(fake).stream(hello()))
    assert caught.value.message == message
    assert caught.value.retryable
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("status", "error_type"), [(429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error")]
)
async def test_retryable_errors_before_the_first_byte_then_success(fake, status, error_type):
    fake.fail_next(status, error_body(error_type, "try again"), times=2)
    started = time.monotonic()
    result = await collect(make_provider(fake).stream(hello()))
    assert result.text == "Hello"
    assert len(fake.requests) == 3
    assert time.monotonic() - started < 2


async def test_retry_after_is_honoured_and_reported(fake):
    fake.fail_next(429, error_body("rate_limit_error", "slow down"), headers={"retry-after": "0.3"})
    started = time.monotonic()
    result = await collect(make_provider(fake).stream(hello()))
    assert result.text == "Hello"
    assert time.monotonic() - started >= 0.3

    fake.fail_next(429, error_body("rate_limit_error", "slow down"), headers={"retry-after": "7"})
    provider = make_provider(fake, retry=FAST_RETRY.__class__(max_retries=0))
    with pytest.raises(errors.RateLimitError) as caught:
        await collect(provider.stream(hello()))
    assert caught.value.retry_after == 7.0


# ---- faults after the 200 -----------------------------------------------------------------------


async def test_error_event_mid_stream_is_raised_as_overloaded(fake):
    fake.stream_fault = StreamFault("error", after=4)
    events = []
    with pytest.raises(errors.OverloadedError) as caught:
        async for event in make_provider(fake).stream(hello()):
            events.append(event)
    assert caught.value.message == "Overloaded"
    assert events == [TextDelta("Hello")]  # text that arrived was delivered first
    assert len(fake.requests) == 1  # no retry once the stream started


async def test_other_error_events_keep_their_type(fake):
    fake.error_event = error_body("api_error", "Internal server error")
    fake.stream_fault = StreamFault("error", after=1)
    with pytest.raises(errors.ProviderUnavailableError, match="Internal server error"):
        await collect(make_provider(fake).stream(hello()))


async def test_malformed_event_is_a_protocol_error(fake):
    fake.stream_fault = StreamFault("malformed", after=2)
    with pytest.raises(errors.ProtocolError, match="malformed JSON"):
        await collect(make_provider(fake).stream(hello()))


async def test_connection_dropped_mid_stream_is_a_protocol_error(fake):
    fake.stream_fault = StreamFault("drop", after=4)
    with pytest.raises(errors.ProtocolError):
        await collect(make_provider(fake).stream(hello()))


async def test_stream_without_message_stop_is_a_protocol_error(fake):
    fake.long_tokens = 3
    fake.stream_fault = StreamFault("truncate", after=6)  # everything but message_stop
    with pytest.raises(errors.ProtocolError, match="ended before"):
        await collect(make_provider(fake).stream(hello()))


async def test_stall_longer_than_the_read_timeout_is_a_timeout(fake):
    fake.stream_fault = StreamFault("stall", after=2, seconds=5)
    provider = make_provider(fake, timeouts=Timeouts(read=0.3))
    started = time.monotonic()
    with pytest.raises(errors.ProviderTimeoutError, match="stalled"):
        await collect(provider.stream(hello()))
    assert time.monotonic() - started < 3


# ---- stopping early -----------------------------------------------------------------------------


async def test_aclose_closes_the_upstream_at_once(fake):
    fake.long_tokens = 5000
    fake.stream_delay = 0.01
    await close_after_first_text(make_provider(fake).stream(hello()))
    assert await server_saw_disconnect(fake)


async def test_cancelling_the_task_closes_the_upstream(fake):
    fake.long_tokens = 5000
    fake.stream_delay = 0.01
    await cancel_after_first_text(make_provider(fake).stream(hello()))
    assert await server_saw_disconnect(fake)


async def test_long_stream_arrives_whole(fake):
    fake.long_tokens = 500
    result = await collect(make_provider(fake).stream(hello()))
    assert result.text == long_text(500)
    assert result.usage.output_tokens == 500


# ---- attachments --------------------------------------------------------------------------------


async def test_unaccepted_attachment_fails_before_any_request(fake):
    request = ChatRequest(
        model=MODEL,
        messages=(Message("user", "read", attachments=(Attachment("notes.txt", "text/plain", b"hello"),)),),
    )
    with pytest.raises(errors.UnsupportedAttachmentError) as caught:
        await collect(make_provider(fake).stream(request))
    assert "notes.txt" in str(caught.value)
    assert "image/png" in str(caught.value)
    assert fake.requests == []


async def test_oversized_image_fails_before_any_request(fake):
    big = Attachment("huge.png", "image/png", b"\x89PNG" + b"\0" * (5 * 1024 * 1024 + 1))
    request = ChatRequest(model=MODEL, messages=(Message("user", "see", attachments=(big,)),))
    with pytest.raises(errors.UnsupportedAttachmentError, match=r"huge\.png"):
        await collect(make_provider(fake).stream(request))
    assert fake.requests == []


# ---- models and keys ----------------------------------------------------------------------------


async def test_list_models_follows_the_pages(fake):
    provider = make_provider(fake, model_page_size=2)
    models = await provider.list_models()

    assert [m.id for m in models] == ["claude-opus-4-6", "claude-haiku-4-5-20251001", "claude-3-haiku-20240307"]
    assert models[0].name == "Claude Opus 4.6"
    assert (models[0].context_window, models[0].max_output_tokens, models[0].supports_images) == (200000, 128000, True)
    assert [r.query for r in fake.requests] == ["limit=2", "limit=2&after_id=claude-haiku-4-5-20251001"]
    await provider.list_models()  # served from the cache
    assert len(fake.requests) == 2


async def test_validate_key(fake):
    await make_provider(fake).validate_key()
    assert (fake.requests[-1].path, fake.requests[-1].query) == ("/v1/models", "limit=1")

    with pytest.raises(errors.AuthenticationError, match="invalid x-api-key"):
        await make_provider(fake, key="sk-ant-api03-not-the-right-one-0000").validate_key()

    fake.fail_next(403, error_body("permission_error", "This key cannot list models"))
    with pytest.raises(errors.PermissionDeniedError, match="cannot list models"):
        await make_provider(fake).validate_key()


# ---- secrets ------------------------------------------------------------------------------------


async def test_the_key_never_appears_in_errors_logs_or_repr(fake, caplog):
    debug_logging(caplog)
    provider = make_provider(fake)
    texts = [repr(provider), str(provider)]
    await collect(provider.stream(hello(temperature=0.2)))
    for status, kind, times in [
        (401, "authentication_error", 1),
        (529, "overloaded_error", 3),
        (400, "invalid_request_error", 1),
    ]:
        fake.fail_next(status, error_body(kind, "nope"), times=times, headers={"retry-after": "0"})
        with pytest.raises(errors.ProviderError) as caught:
            await collect(provider.stream(hello()))
        texts += [str(caught.value), repr(caught.value)]
    fake.stream_fault = StreamFault("error", after=2)
    with pytest.raises(errors.OverloadedError) as caught:
        await collect(provider.stream(hello()))
    texts += [str(caught.value), repr(caught.value)]

    assert "request model=" in caplog.text and "finish reason=stop" in caplog.text
    assert "retry" in caplog.text
    assert_no_secret(KEY, caplog.text, *texts)


async def test_a_base_url_pasted_with_v1_is_tolerated(fake):
    provider = create_llm_provider("ANTHROPIC", api_key=KEY, base_url=fake.base_url + "/v1/")
    assert (await collect(provider.stream(hello()))).text == "Hello"
    assert fake.requests[-1].path == "/v1/messages"
    assert create_llm_provider("ANTHROPIC", api_key=KEY).base_url == "https://api.anthropic.com"


# ---- reasoning, the state that goes back, prompt caching ----------------------------------------

OPUS = "claude-opus-4-6"


def ask(model: str = MODEL, **kwargs) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("user", "Say just hello"),), **kwargs)


def recorded_events(name: str) -> list[dict]:
    """The data of every event in a recording, parsed the plain way (no plugin code involved)."""
    return [
        json.loads(line[6:])
        for line in fixture_bytes(name).decode().splitlines()
        if line.startswith("data: ") and line[6:].strip()
    ]


def recorded_request(name: str) -> dict:
    """The body of the real request a recording answered (its .request.txt: method line, then JSON)."""
    return json.loads(fixture_bytes(f"{name}.request.txt").decode().split("\n", 1)[1])


def recorded_signatures(name: str) -> list[str]:
    return [
        e["delta"]["signature"]
        for e in recorded_events(name)
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "signature_delta"
    ]


def kinds(events) -> list[str]:
    return [type(event).__name__ for event in events]


def cache_controls(body: dict) -> list[dict]:
    """Every cache_control breakpoint in a request body, wherever it sits."""
    found = []
    system = body.get("system")
    for block in system if isinstance(system, list) else []:
        found += [block["cache_control"]] if "cache_control" in block else []
    for message in body["messages"]:
        found += [block["cache_control"] for block in message["content"] if "cache_control" in block]
    return found


def second_turn(state, *, model: str = MODEL, **kwargs) -> ChatRequest:
    messages = (
        Message("user", "Use the fixed_version tool. Then tell me the version and make one short joke about it."),
        Message("assistant", "The version is 0.32a0.", provider_state=state),
        Message("user", "And another joke?"),
    )
    return ChatRequest(model=model, messages=messages, **kwargs)


async def test_thinking_with_tool_use_streams_reasoning_usage_and_the_signed_block(fake):
    fake.reply = "thinking_tool_use"
    result = await collect(make_provider(fake).stream(hello(reasoning=ReasoningOptions(budget_tokens=1024))))

    assert kinds(result.events) == ["ReasoningDelta", "ReasoningDelta", "ToolCall", "ProviderState", "Usage", "Finish"]
    assert result.reasoning == (
        "The user wants me to:\n1. Use the fixed_version tool\n2. Tell them the version\n3. Make a short joke "
        "about it\n\nLet me first call the fixed_version tool to see what version it returns."
    )
    assert result.text == TEXTS["thinking_tool_use"]
    # 598 fresh input tokens and no cache in the recording; 53 of the 92 output tokens were thinking
    assert result.usage == Usage(598, 92, cached_input_tokens=0, cache_write_tokens=0, reasoning_tokens=53)
    assert result.finish == "tool_calls"
    (state,) = [e.value for e in result.events if isinstance(e, ProviderState)]
    assert state == [
        {"type": "thinking", "thinking": result.reasoning, "signature": recorded_signatures(FIXTURES[fake.reply])[0]}
    ]
    # what the real client sent back next turn (the recorded turn-2 request) is exactly that block
    turn2 = recorded_request("anthropic_stream_thinking_tool_use_turn2.sse")
    assert state == [turn2["messages"][1]["content"][0]]


async def test_adaptive_thinking_keeps_text_before_the_thinking_in_order(fake):
    fake.reply = "adaptive_thinking"
    result = await collect(make_provider(fake).stream(ask(model=OPUS)))

    assert kinds(result.events) == ["TextDelta"] + ["ReasoningDelta"] * 7 + ["TextDelta"] * 9 + [
        "ProviderState",
        "Usage",
        "Finish",
    ]
    assert result.events[0] == TextDelta("\n\n")
    assert result.reasoning == "Brief answer with two pet pelican names."
    assert result.text == TEXTS["adaptive_thinking"]
    assert result.usage == Usage(34, 44, cached_input_tokens=0, cache_write_tokens=0)  # no thinking_tokens sent
    (state,) = [e.value for e in result.events if isinstance(e, ProviderState)]
    signature = recorded_signatures(FIXTURES[fake.reply])[0]
    assert state == [{"type": "thinking", "thinking": result.reasoning, "signature": signature}]


async def test_redacted_thinking_blocks_are_kept_whole_and_in_order(fake):
    fake.reply = "redacted_thinking"
    result = await collect(make_provider(fake).stream(hello(reasoning=ReasoningOptions(budget_tokens=1024))))

    assert result.reasoning == ""  # nothing readable to show
    assert result.text == TEXTS["redacted_thinking"]
    recorded = [
        e["content_block"]
        for e in recorded_events(FIXTURES[fake.reply])
        if e["type"] == "content_block_start" and e["content_block"]["type"] == "redacted_thinking"
    ]
    assert len(recorded) == 2
    (state,) = [e.value for e in result.events if isinstance(e, ProviderState)]
    assert state == recorded
    assert kinds(result.events)[-3:] == ["ProviderState", "Usage", "Finish"]


async def test_a_plain_reply_has_no_provider_state(fake):
    result = await collect(make_provider(fake).stream(hello()))
    assert not [e for e in result.events if isinstance(e, ProviderState)]


async def test_the_second_turn_sends_the_thinking_back_first_exactly_as_received(fake):
    fake.reply = "thinking_tool_use"
    provider = make_provider(fake)
    first = await provider.complete(hello(reasoning=ReasoningOptions(budget_tokens=1024)))
    fake.reply = "text"
    await collect(provider.stream(second_turn(first.provider_state, options={"prompt_caching": False})))

    assistant = fake.requests[-1].json["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == [*first.provider_state, {"type": "text", "text": "The version is 0.32a0."}]
    assert assistant["content"][0]["signature"] == recorded_signatures("anthropic_stream_thinking_tool_use.sse")[0]
    turn2 = recorded_request("anthropic_stream_thinking_tool_use_turn2.sse")
    assert assistant["content"][0] == turn2["messages"][1]["content"][0]


async def test_redacted_blocks_go_back_unchanged_before_the_text(fake):
    fake.reply = "redacted_thinking"
    provider = make_provider(fake)
    first = await provider.complete(hello(reasoning=ReasoningOptions(budget_tokens=1024)))
    fake.reply = "text"
    await collect(provider.stream(second_turn(first.provider_state, options={"prompt_caching": False})))

    content = fake.requests[-1].json["messages"][1]["content"]
    assert [block["type"] for block in content] == ["redacted_thinking", "redacted_thinking", "text"]
    assert content[:2] == first.provider_state


async def test_state_that_is_not_this_plugins_shape_is_not_sent(fake):
    await collect(make_provider(fake).stream(second_turn({"reasoning": "x"}, options={"prompt_caching": False})))
    assert fake.requests[-1].json["messages"][1]["content"] == [{"type": "text", "text": "The version is 0.32a0."}]


@pytest.mark.parametrize(
    ("model", "reasoning", "named"),
    [
        (
            MODEL,
            ReasoningOptions(effort="high"),
            "takes no reasoning effort (it takes a thinking budget of 1024 to 64000",
        ),
        (
            OPUS,
            ReasoningOptions(effort="minimal"),
            "takes a reasoning effort of low, medium, high, xhigh, not 'minimal'",
        ),
        (MODEL, ReasoningOptions(budget_tokens=500), "takes a thinking budget of 1024 to 64000 tokens, not 500"),
        ("claude-3-5-haiku-20241022", ReasoningOptions(budget_tokens=2048), "takes no thinking budget"),
    ],
)
async def test_an_effort_or_budget_the_model_cannot_take_is_refused_before_any_request(fake, model, reasoning, named):
    with pytest.raises(errors.InvalidRequestError) as caught:
        await collect(make_provider(fake).stream(ask(model=model, reasoning=reasoning)))
    assert repr(model) in caught.value.message
    assert named in caught.value.message
    assert fake.requests == []


async def test_an_effort_is_sent_as_output_config_with_adaptive_thinking(fake):
    fake.reply = "adaptive_thinking"
    await collect(make_provider(fake).stream(ask(model=OPUS, reasoning=ReasoningOptions(effort="medium"))))

    body = fake.requests[-1].json
    assert body["thinking"] == recorded_request("anthropic_stream_adaptive_thinking.sse")["thinking"]
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "medium"}


async def test_a_budget_is_sent_as_enabled_thinking_as_recorded(fake):
    fake.reply = "thinking"
    await collect(make_provider(fake).stream(hello(reasoning=ReasoningOptions(budget_tokens=1024))))

    body = fake.requests[-1].json
    recorded = recorded_request("anthropic_stream_thinking.sse")
    assert body["thinking"] == recorded["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] == recorded["max_tokens"] == 8192
    assert "output_config" not in body


async def test_max_tokens_is_raised_above_the_budget(fake):
    request = hello(reasoning=ReasoningOptions(budget_tokens=20000), max_tokens=4000)
    await collect(make_provider(fake).stream(request))

    body = fake.requests[-1].json
    assert body["thinking"]["budget_tokens"] == 20000
    assert body["max_tokens"] > 20000


async def test_summary_off_asks_for_the_thinking_to_be_omitted(fake):
    await collect(make_provider(fake).stream(hello(reasoning=ReasoningOptions(budget_tokens=2048, summary=False))))
    assert fake.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 2048, "display": "omitted"}
    opus = ask(model=OPUS, reasoning=ReasoningOptions(effort="low", summary=False))
    await collect(make_provider(fake).stream(opus))
    assert fake.requests[-1].json["thinking"] == {"type": "adaptive", "display": "omitted"}


async def test_no_reasoning_options_send_no_thinking(fake):
    await collect(make_provider(fake).stream(hello(reasoning=ReasoningOptions(summary=False))))
    body = fake.requests[-1].json
    assert "thinking" not in body
    assert "output_config" not in body


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"temperature": 0.5}, "temperature"),
        ({"top_p": 0.5}, "top_p"),
        ({"messages": (Message("user", "hi"), Message("assistant", "Sure:"))}, "prefill"),
    ],
)
async def test_what_thinking_rules_out_is_refused_before_any_request(fake, kwargs, named):
    request = ChatRequest(
        **{"model": MODEL, "messages": (Message("user", "hi"),), **kwargs},
        reasoning=ReasoningOptions(budget_tokens=1024),
    )
    with pytest.raises(errors.InvalidRequestError, match=named):
        await collect(make_provider(fake).stream(request))
    assert fake.requests == []


async def test_thinking_takes_temperature_one_and_a_high_top_p(fake):
    await collect(make_provider(fake).stream(hello(reasoning=ReasoningOptions(budget_tokens=1024), temperature=1.0)))
    assert fake.requests[-1].json["temperature"] == 1.0
    await collect(make_provider(fake).stream(hello(reasoning=ReasoningOptions(budget_tokens=1024), top_p=0.96)))
    assert fake.requests[-1].json["top_p"] == 0.96


def test_the_manifest_offers_prompt_caching(fake):
    assert make_provider(fake).config.prompt_caching is True


async def test_with_caching_on_the_second_turn_carries_cache_control_on_the_prefix(fake):
    await collect(make_provider(fake).stream(second_turn(None)))

    body = fake.requests[-1].json
    prefix_end = body["messages"][1]["content"][-1]
    assert prefix_end == {"type": "text", "text": "The version is 0.32a0.", "cache_control": {"type": "ephemeral"}}
    assert cache_controls(body) == [{"type": "ephemeral"}]  # the newest user turn carries none
    assert "cache_control" not in body["messages"][-1]["content"][-1]


async def test_with_thinking_state_the_breakpoint_sits_on_the_text_after_it(fake):
    state = [{"type": "thinking", "thinking": "t", "signature": "sig"}]
    await collect(make_provider(fake).stream(second_turn(state)))
    content = fake.requests[-1].json["messages"][1]["content"]
    assert content[0] == state[0]  # unchanged
    assert content[-1]["cache_control"] == {"type": "ephemeral"}


async def test_a_long_system_prompt_gets_its_own_breakpoint(fake):
    system = "You are a careful reviewer of pelican names. " * 200
    request = ChatRequest(model=MODEL, messages=(Message("system", system), *second_turn(None).messages))
    await collect(make_provider(fake).stream(request))

    body = fake.requests[-1].json
    assert body["system"] == [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    assert cache_controls(body) == [{"type": "ephemeral"}] * 2
    assert len(cache_controls(body)) <= 4


async def test_with_caching_off_no_breakpoint_is_sent(fake):
    system = "You are a careful reviewer of pelican names. " * 200
    request = ChatRequest(
        model=MODEL,
        messages=(Message("system", system), *second_turn(None).messages),
        options={"prompt_caching": False},
    )
    await collect(make_provider(fake).stream(request))

    body = fake.requests[-1].json
    assert body["system"] == system
    assert cache_controls(body) == []


async def test_the_recorded_cache_figures_reach_usage(fake):
    fake.reply = "cached"
    result = await collect(make_provider(fake).stream(second_turn(None)))

    assert result.text == TEXTS["cached"]
    # input_tokens counts all of it: 3 fresh + 418 written to the cache + 1,111 read from it
    assert result.usage == Usage(3 + 418 + 1111, 33, cached_input_tokens=1111, cache_write_tokens=418)


async def test_an_unset_prompt_caching_parameter_means_the_default_on(fake):
    await collect(make_provider(fake).stream(second_turn(None, options={"prompt_caching": None})))
    assert cache_controls(fake.requests[-1].json) == [{"type": "ephemeral"}]


async def test_merged_assistant_turns_keep_every_signed_block_first_in_order(fake):
    first = [{"type": "thinking", "thinking": "a", "signature": "sig-a"}]
    second = [{"type": "redacted_thinking", "data": "opaque-b"}]
    messages = (
        Message("user", "hi"),
        Message("assistant", "One.", provider_state=first),
        Message("assistant", "Two.", provider_state=second),
        Message("user", "go on"),
    )
    request = ChatRequest(model=MODEL, messages=messages, reasoning=ReasoningOptions(budget_tokens=1024))
    await collect(make_provider(fake).stream(request))

    content = fake.requests[-1].json["messages"][1]["content"]
    assert [block.get("signature") or block.get("data") for block in content[:2]] == ["sig-a", "opaque-b"]
    assert [block.get("text") for block in content[2:]] == ["One.", "Two."]
