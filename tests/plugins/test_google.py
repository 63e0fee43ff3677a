"""The Google Gemini plugin against a local Generative Language API over real sockets."""

from __future__ import annotations

import base64
import json
import time

import pytest

from providers import errors
from providers.contract import (
    Attachment,
    ChatRequest,
    Finish,
    Message,
    ProviderState,
    ReasoningDelta,
    ReasoningOptions,
    TextDelta,
    Usage,
)
from providers.factory import create_image_provider, create_llm_provider
from providers.http import RetryPolicy, Timeouts
from tests.fakes.fixtures import fixture_bytes
from tests.fakes.gemini import (
    FUNCTION_CALL_MODEL,
    FUNCTION_CALL_RECORDING,
    RECORDED_MODEL,
    THINKING_MODEL,
    FakeGemini,
    error_body,
    recorded_chunks,
    recorded_text,
    signed_parts,
    sse_recorded_chunks,
)
from tests.fakes.samples import (
    FAST_RETRY,
    PDF_BYTES,
    assert_no_secret,
    cancel_after_first_text,
    close_after_first_text,
    collect,
    debug_logging,
    png_bytes,
    server_saw_disconnect,
)
from tests.fakes.stream_faults import StreamFault

KEY = "AIzaSyQ7-secret-gemini-key-for-tests-01"


@pytest.fixture
def fake():
    with FakeGemini(api_key=KEY) as server:
        yield server


def make_provider(fake: FakeGemini, key: str | None = KEY, **kwargs):
    provider = create_llm_provider("GOOGLE", api_key=key, base_url=fake.base_url)
    provider.retry = FAST_RETRY
    for name, value in kwargs.items():
        setattr(provider, name, value)
    return provider


def ask(model: str = RECORDED_MODEL, **kwargs) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("user", "Name for a pet pelican, just the name"),), **kwargs)


# ---- the happy paths ----------------------------------------------------------------------------


async def test_streams_the_recorded_reply_thoughts_usage_and_finish(fake):
    result = await collect(make_provider(fake).stream(ask()))

    answer, thoughts = recorded_text()
    assert result.text == answer == "Scoop"
    assert result.reasoning == thoughts
    assert result.reasoning.startswith("**Considering the Constraint**")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (11, 2 + 291)  # thoughts are output
    assert result.finish == "stop"

    sent = fake.requests[-1]
    assert (sent.method, sent.path, sent.query) == (
        "POST",
        f"/v1beta/models/{RECORDED_MODEL}:streamGenerateContent",
        "alt=sse",
    )
    assert sent.headers["x-goog-api-key"] == KEY
    assert KEY not in sent.query and "key=" not in sent.query
    assert sent.json == {
        "contents": [{"role": "user", "parts": [{"text": "Name for a pet pelican, just the name"}]}],
        "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
    }


async def test_request_shape_system_roles_parameters_and_attachments(fake):
    png = png_bytes()
    request = ChatRequest(
        model="models/gemini-2.0-flash",
        messages=(
            Message("system", "You are terse."),
            Message("user", "Hi"),
            Message("assistant", "Hello."),
            Message("user", "Look", attachments=(Attachment("p.png", "image/png", png),)),
            Message("user", "and read", attachments=(Attachment("r.pdf", "application/pdf", PDF_BYTES),)),
        ),
        temperature=0.7,
        top_p=0.95,
        max_tokens=256,
        stop=("\n\n",),
    )
    await collect(make_provider(fake).stream(request))

    sent = fake.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"  # prefix not doubled
    body = sent.json
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert body["generationConfig"] == {
        "temperature": 0.7,
        "topP": 0.95,
        "maxOutputTokens": 256,
        "stopSequences": ["\n\n"],
    }
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello."}]},
        {
            "role": "user",
            "parts": [
                {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}},
                {"text": "Look"},
                {"inlineData": {"mimeType": "application/pdf", "data": base64.b64encode(PDF_BYTES).decode()}},
                {"text": "and read"},
            ],
        },
    ]


async def test_safety_finish_is_content_filter(fake):
    fake.reply = "safety"
    result = await collect(make_provider(fake).stream(ask("gemini-2.5-flash")))
    assert result.text == "Here is how"
    assert result.finish == "content_filter"


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("MAX_TOKENS", "length"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("IMAGE_PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "other"),
        ("MALFORMED_FUNCTION_CALL", "other"),
        ("LANGUAGE", "other"),
    ],
)
async def test_finish_reasons(fake, reason, finish):
    fake.long_tokens, fake.finish_reason = 2, reason
    assert (await collect(make_provider(fake).stream(ask("gemini-2.5-flash")))).finish == finish


async def test_a_function_call_finishes_as_tool_calls(fake):
    fake.long_tokens, fake.function_call = 2, True
    result = await collect(make_provider(fake).stream(ask("gemini-2.5-flash")))
    assert (result.text, result.finish) == ("w0 w1 ", "tool_calls")


async def test_blocked_prompt_is_a_content_filter_error(fake):
    fake.reply = "blocked"
    with pytest.raises(errors.ContentFilterError, match="PROHIBITED_CONTENT"):
        await collect(make_provider(fake).stream(ask("gemini-2.5-flash")))


async def test_long_stream_keeps_the_last_running_usage(fake):
    fake.long_tokens = 300
    result = await collect(make_provider(fake).stream(ask("gemini-2.5-flash")))
    assert result.text == "".join(f"w{i} " for i in range(300))
    assert (result.usage.input_tokens, result.usage.output_tokens) == (9, 300)


async def test_complete(fake):
    result = await make_provider(fake).complete(ask())
    assert (result.text, result.finish_reason) == ("Scoop", "stop")


# ---- reasoning: thoughts, thought signatures, thinking level and budget ---------------------------


async def test_a_thinking_stream_yields_thoughts_then_text_the_signed_part_and_usage(fake):
    result = await collect(make_provider(fake).stream(ask(THINKING_MODEL)))

    chunks = sse_recorded_chunks()
    answer, thoughts = recorded_text(chunks)
    kinds = [type(e) for e in result.events if not isinstance(e, TextDelta | ReasoningDelta)]
    assert kinds == [ProviderState, Usage, Finish]
    deltas = [e for e in result.events if isinstance(e, TextDelta | ReasoningDelta)]
    first_text = next(i for i, e in enumerate(deltas) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in deltas[:first_text]) and first_text == 4
    assert all(isinstance(e, TextDelta) for e in deltas[first_text:])
    assert (result.reasoning, result.text) == (thoughts, answer)
    assert result.reasoning.startswith("**Clarifying User Goals**")
    # thoughtsTokenCount is outside candidatesTokenCount (34 + 469 + 787 = 1290) and billed as output.
    assert result.usage == Usage(34, 469 + 787, reasoning_tokens=787)
    state = next(e.value for e in result.events if isinstance(e, ProviderState))
    assert [entry["part"] for entry in state["parts"]] == signed_parts(chunks)
    assert state["parts"][0]["offset"] == 0  # the first answer part carries the signature (2.5)
    assert json.loads(json.dumps(state)) == state
    assert fake.requests[-1].json["generationConfig"] == {"thinkingConfig": {"includeThoughts": True}}


async def second_turn(fake: FakeGemini, model: str) -> tuple[list[dict], str]:
    """Ask ``model`` twice, handing the first turn's text and state back; the model turn sent second."""
    first = await make_provider(fake).complete(ask(model))
    assert first.provider_state is not None
    request = ChatRequest(
        model=model,
        messages=(
            Message("user", "Name for a pet pelican, just the name"),
            Message("assistant", first.text, provider_state=first.provider_state),
            Message("user", "And another?"),
        ),
    )
    await make_provider(fake).complete(request)
    body = fake.requests[-1].json
    assert [turn["role"] for turn in body["contents"]] == ["user", "model", "user"]
    return body["contents"][1]["parts"], first.text


async def test_the_next_turn_carries_the_signature_on_the_part_it_came_with_2_5(fake):
    parts, text = await second_turn(fake, THINKING_MODEL)

    recorded = signed_parts(sse_recorded_chunks())
    assert len(recorded) == 1 and recorded[0]["thoughtSignature"].startswith("CiIB0e2Kb6Syj1a9")
    assert parts[0] == recorded[0]  # the first answer part, as received, signature and all
    assert "".join(part["text"] for part in parts) == text
    assert [part for part in parts if "thoughtSignature" in part] == recorded
    assert recorded[0]["thoughtSignature"].encode() in fake.requests[-1].body  # not re-encoded


async def test_the_next_turn_carries_the_trailing_signed_empty_part_3_x(fake):
    parts, text = await second_turn(fake, RECORDED_MODEL)

    recorded = signed_parts(recorded_chunks())
    assert recorded == [{"text": "", "thoughtSignature": recorded[0]["thoughtSignature"]}]
    assert parts == [{"text": text}, recorded[0]]
    assert recorded[0]["thoughtSignature"].encode() in fake.requests[-1].body


async def test_state_that_no_longer_fits_the_text_is_dropped_not_sent_wrong(fake):
    state = {"parts": [{"offset": 0, "part": {"text": "Something else", "thoughtSignature": "c2ln"}}]}
    request = ChatRequest(
        model=THINKING_MODEL,
        messages=(Message("user", "Hi"), Message("assistant", "Edited.", provider_state=state), Message("user", "?")),
    )
    await collect(make_provider(fake).stream(request))
    assert fake.requests[-1].json["contents"][1] == {"role": "model", "parts": [{"text": "Edited."}]}


async def test_a_recorded_gemini_3_function_call_finishes_as_tool_calls_with_its_thought_tokens(fake):
    result = await collect(make_provider(fake).stream(ask(FUNCTION_CALL_MODEL)))
    assert (result.text, result.reasoning, result.finish) == ("", "", "tool_calls")
    assert result.usage == Usage(60, 16 + 32, reasoning_tokens=32)
    # The signature rides on the functionCall part: that part, as received, is the state.
    (state,) = [e.value for e in result.events if isinstance(e, ProviderState)]
    assert state == {"parts": [{"offset": 0, "part": signed_parts(recorded_chunks(FUNCTION_CALL_RECORDING))[0]}]}


@pytest.mark.parametrize(
    ("model", "reasoning", "expected"),
    [
        (
            "gemini-3-flash-preview",
            ReasoningOptions(effort="minimal"),
            {"includeThoughts": True, "thinkingLevel": "MINIMAL"},
        ),
        ("gemini-3-pro-preview", ReasoningOptions(effort="low"), {"includeThoughts": True, "thinkingLevel": "LOW"}),
        (
            "gemini-3.1-pro-preview",
            ReasoningOptions(effort="medium"),
            {"includeThoughts": True, "thinkingLevel": "MEDIUM"},
        ),
        (
            "models/gemini-3.6-flash",
            ReasoningOptions(effort="high", summary=False),
            {"includeThoughts": False, "thinkingLevel": "HIGH"},
        ),
        ("gemini-2.5-pro", ReasoningOptions(budget_tokens=2048), {"includeThoughts": True, "thinkingBudget": 2048}),
        (
            "gemini-2.5-flash",
            ReasoningOptions(budget_tokens=0, summary=False),
            {"includeThoughts": False, "thinkingBudget": 0},
        ),
        (
            "gemini-2.5-flash-lite",
            ReasoningOptions(budget_tokens=512),
            {"includeThoughts": True, "thinkingBudget": 512},
        ),
    ],
)
async def test_the_request_carries_the_thinking_level_or_budget(fake, model, reasoning, expected):
    await collect(make_provider(fake).stream(ask(model, reasoning=reasoning)))
    assert fake.requests[-1].json["generationConfig"] == {"thinkingConfig": expected}


@pytest.mark.parametrize(
    ("model", "reasoning", "says"),
    [
        (
            "gemini-3-pro-preview",
            ReasoningOptions(effort="medium"),
            "takes a reasoning effort of low, high, not 'medium'",
        ),
        ("gemini-3-flash-preview", ReasoningOptions(effort="none"), "of minimal, low, medium, high, not 'none'"),
        (
            "gemini-3-flash-preview",
            ReasoningOptions(budget_tokens=1024),
            "takes no thinking budget (it takes a reasoning",
        ),
        (
            "gemini-2.5-pro",
            ReasoningOptions(effort="high"),
            "no reasoning effort (it takes a thinking budget of 128 to 32768",
        ),
        ("gemini-2.5-pro", ReasoningOptions(budget_tokens=0), "a thinking budget of 128 to 32768 tokens, not 0"),
        (
            "gemini-2.5-flash",
            ReasoningOptions(budget_tokens=30000),
            "a thinking budget of 0 to 24576 tokens, not 30000",
        ),
        ("gemini-2.5-flash-lite", ReasoningOptions(budget_tokens=100), "0 (off) or 512 to 24576 tokens, not 100"),
        ("gemini-2.0-flash", ReasoningOptions(effort="low"), "takes no reasoning effort"),
    ],
)
async def test_an_effort_or_budget_the_model_cannot_take_is_refused_before_any_request(fake, model, reasoning, says):
    with pytest.raises(errors.InvalidRequestError) as caught:
        await collect(make_provider(fake).stream(ask(model, reasoning=reasoning)))
    assert repr(model) in caught.value.message and says in caught.value.message
    assert fake.requests == []


async def test_cached_and_thought_tokens_in_the_usage(fake):
    fake.long_tokens = 2
    fake.usage_extra = {"cachedContentTokenCount": 6, "thoughtsTokenCount": 40, "toolUsePromptTokenCount": 3}
    result = await collect(make_provider(fake).stream(ask("gemini-2.5-flash")))
    # promptTokenCount includes the cached tokens; the tool-use prompt is input too.
    assert result.usage == Usage(9 + 3, 2 + 40, cached_input_tokens=6, reasoning_tokens=40)


# ---- errors -------------------------------------------------------------------------------------


async def test_bad_key_is_an_authentication_error_not_a_bad_request(fake):
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(make_provider(fake, key="AIzaSyWrong-key-000000000000000000").stream(ask()))
    assert caught.value.status == 400
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    assert len(fake.requests) == 1


async def test_unknown_model_is_model_not_found(fake):
    with pytest.raises(errors.ModelNotFoundError, match=r"models/gemini-1\.0-pro is not found"):
        await collect(make_provider(fake).stream(ask("gemini-1.0-pro")))


@pytest.mark.parametrize(
    ("status", "rpc", "message", "expected"),
    [
        (400, "INVALID_ARGUMENT", "Request contains an invalid argument.", errors.InvalidRequestError),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            errors.ContextLengthError,
        ),
        (400, "FAILED_PRECONDITION", "User location is not supported for the API use.", errors.PermissionDeniedError),
        (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.", errors.PermissionDeniedError),
    ],
)
async def test_http_errors_map_to_the_documented_classes(fake, status, rpc, message, expected):
    fake.fail_next(status, error_body(status, rpc, message))
    with pytest.raises(expected) as caught:
        await collect(make_provider(fake).stream(ask()))
    assert type(caught.value) is expected
    assert (caught.value.status, caught.value.message) == (status, message)
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "rpc", "message", "expected"),
    [
        (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan.", errors.RateLimitError),
        (500, "INTERNAL", "An internal error has occurred.", errors.ProviderUnavailableError),
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", errors.OverloadedError),
        (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.", errors.ProviderTimeoutError),
    ],
)
async def test_retryable_errors_retried_then_raised_or_recovered(fake, status, rpc, message, expected):
    fake.fail_next(status, error_body(status, rpc, message), times=3)
    with pytest.raises(expected) as caught:
        await collect(make_provider(fake).stream(ask()))
    assert caught.value.message == message and caught.value.retryable
    assert len(fake.requests) == 3

    fake.requests.clear()
    fake.fail_next(status, error_body(status, rpc, message), times=2)
    assert (await collect(make_provider(fake).stream(ask()))).text == "Scoop"
    assert len(fake.requests) == 3


async def test_retry_delay_in_the_body_is_honoured(fake):
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.4s"}]
    fake.fail_next(429, error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", details))
    started = time.monotonic()
    assert (await collect(make_provider(fake).stream(ask()))).text == "Scoop"
    assert time.monotonic() - started >= 0.4

    fake.fail_next(
        429, error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", [{**details[0], "retryDelay": "17s"}])
    )
    with pytest.raises(errors.RateLimitError) as caught:
        await collect(make_provider(fake, retry=RetryPolicy(max_retries=0)).stream(ask()))
    assert caught.value.retry_after == 17.0


async def test_error_chunk_mid_stream(fake):
    fake.stream_fault = StreamFault("error", after=1)
    seen = []
    with pytest.raises(errors.OverloadedError, match="overloaded") as caught:
        async for event in make_provider(fake).stream(ask()):
            seen.append(event)
    assert caught.value.status == 503
    assert len(seen) == 1 and seen[0].text.startswith("**Considering")
    assert len(fake.requests) == 1


async def test_malformed_chunk_is_a_protocol_error(fake):
    fake.stream_fault = StreamFault("malformed", after=1)
    with pytest.raises(errors.ProtocolError, match="malformed JSON"):
        await collect(make_provider(fake).stream(ask()))


async def test_dropped_connection_is_a_protocol_error(fake):
    fake.stream_fault = StreamFault("drop", after=1)
    with pytest.raises(errors.ProtocolError):
        await collect(make_provider(fake).stream(ask()))


async def test_end_without_finish_reason_is_a_protocol_error(fake):
    fake.stream_fault = StreamFault("truncate", after=2)
    with pytest.raises(errors.ProtocolError, match="without a finish reason"):
        await collect(make_provider(fake).stream(ask()))


async def test_stall_longer_than_the_read_timeout(fake):
    fake.stream_fault = StreamFault("stall", after=1, seconds=5)
    with pytest.raises(errors.ProviderTimeoutError):
        await collect(make_provider(fake, timeouts=Timeouts(read=0.3)).stream(ask()))


# ---- stopping early -----------------------------------------------------------------------------


async def test_aclose_closes_the_upstream(fake):
    fake.long_tokens = 5000
    fake.stream_delay = 0.01
    await close_after_first_text(make_provider(fake).stream(ask("gemini-2.5-flash")))
    assert await server_saw_disconnect(fake)


async def test_cancellation_closes_the_upstream(fake):
    fake.long_tokens = 5000
    fake.stream_delay = 0.01
    await cancel_after_first_text(make_provider(fake).stream(ask("gemini-2.5-flash")))
    assert await server_saw_disconnect(fake)


@pytest.mark.parametrize(("name", "mime"), [("song.mp3", "audio/mpeg"), ("cat.gif", "image/gif")])
async def test_unaccepted_attachment_fails_before_any_request(fake, name, mime):
    request = ChatRequest(
        model=RECORDED_MODEL,
        messages=(Message("user", "look", attachments=(Attachment(name, mime, b"GIF89a"),)),),
    )
    with pytest.raises(errors.UnsupportedAttachmentError) as caught:
        await collect(make_provider(fake).stream(request))
    assert name in str(caught.value) and "application/pdf" in str(caught.value)
    assert fake.requests == []


# ---- models and keys ----------------------------------------------------------------------------


async def test_list_models_pages_filters_and_strips_the_prefix(fake):
    page_1 = json.loads(fixture_bytes("gemini_models.json"))
    expected = [
        m["name"].removeprefix("models/")
        for m in page_1["models"]
        if "generateContent" in m["supportedGenerationMethods"]
    ] + ["gemini-test-page-two"]

    models = await make_provider(fake).list_models()

    assert [m.id for m in models] == expected
    assert "imagen-4.0-generate-001" not in expected and "gemini-embedding-001" not in expected
    flash = models[0]
    assert (flash.id, flash.name, flash.context_window, flash.max_output_tokens) == (
        "gemini-2.5-flash",
        "Gemini 2.5 Flash",
        1048576,
        65536,
    )
    assert [r.query for r in fake.requests] == ["pageSize=1000", f"pageSize=1000&pageToken={page_1['nextPageToken']}"]
    assert all(r.headers["x-goog-api-key"] == KEY for r in fake.requests)


async def test_validate_key(fake):
    await make_provider(fake).validate_key()
    assert (fake.requests[-1].path, fake.requests[-1].query) == ("/v1beta/models", "pageSize=1")

    with pytest.raises(errors.AuthenticationError, match="API key not valid"):
        await make_provider(fake, key="AIzaSyNot-the-key-0000000000000000").validate_key()

    fake.fail_next(403, error_body(403, "PERMISSION_DENIED", "Generative Language API has not been used in project 1"))
    with pytest.raises(errors.PermissionDeniedError, match="has not been used"):
        await make_provider(fake).validate_key()


async def test_the_key_never_appears_in_urls_errors_logs_or_repr(fake, caplog):
    debug_logging(caplog)
    provider = make_provider(fake)
    texts = [repr(provider)]
    await collect(provider.stream(ask()))
    await provider.list_models()
    for status, rpc, times in [(400, "INVALID_ARGUMENT", 1), (503, "UNAVAILABLE", 3), (404, "NOT_FOUND", 1)]:
        fake.fail_next(status, error_body(status, rpc, "nope"), times=times)
        with pytest.raises(errors.ProviderError) as caught:
            await collect(provider.stream(ask()))
        texts += [str(caught.value), repr(caught.value)]
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(make_provider(fake, key="AIzaSyWrong-key-000000000000000000").stream(ask()))
    texts += [str(caught.value), repr(caught.value)]

    assert all("key=" not in r.query for r in fake.requests)
    assert "finish reason=stop" in caplog.text
    assert_no_secret(KEY, caplog.text, *texts)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (None, "https://generativelanguage.googleapis.com/v1beta"),
        ("https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com/v1beta"),
        ("https://generativelanguage.googleapis.com/v1/", "https://generativelanguage.googleapis.com/v1"),
        ("https://gateway.example/google/v1beta", "https://gateway.example/google/v1beta"),
    ],
)
def test_base_url(given, used):
    assert create_llm_provider("GOOGLE", api_key=KEY, base_url=given).base_url == used
    assert create_image_provider("GOOGLE", api_key=KEY, base_url=given).base_url == used
