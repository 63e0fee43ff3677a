"""The Ollama plugin against a local native API (/api/chat NDJSON) over real sockets."""

from __future__ import annotations

import base64
import socket
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
from providers.factory import create_llm_provider
from providers.http import Timeouts
from tests.fakes.ollama import (
    GPT_OSS_THINKING,
    GPT_OSS_TOKENS,
    PROMPT_EVAL_COUNT,
    REPLY,
    THINKING,
    TOKENS,
    FakeOllama,
    error_body,
    long_tokens,
)
from tests.fakes.samples import (
    FAST_RETRY,
    assert_no_secret,
    cancel_after_first_text,
    close_after_first_text,
    collect,
    debug_logging,
    jpeg_bytes,
    png_bytes,
    server_saw_disconnect,
)
from tests.fakes.stream_faults import StreamFault

MODEL = "llama3.2"
CLOUD_KEY = "ollama-cloud-Q7secretvalue-0000000001"


@pytest.fixture
def fake():
    with FakeOllama() as server:
        yield server


def make_provider(base_url: str, key: str | None = None, **kwargs):
    provider = create_llm_provider("OLLAMA", api_key=key, base_url=base_url)
    provider.retry = FAST_RETRY
    for name, value in kwargs.items():
        setattr(provider, name, value)
    return provider


def ask(**kwargs) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=(Message("user", "Why is the sky blue?"),), **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_streams_text_usage_and_finish(fake):
    provider = make_provider(fake.base_url)
    assert provider.timeouts.read is None  # local models may think for minutes
    result = await collect(provider.stream(ask()))

    assert result.text == REPLY
    assert [e.text for e in result.events if isinstance(e, TextDelta)] == TOKENS
    assert (result.usage.input_tokens, result.usage.output_tokens) == (PROMPT_EVAL_COUNT, len(TOKENS))
    assert result.finish == "stop"
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/api/chat")
    assert "authorization" not in sent.headers
    assert sent.json == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "stream": True,
    }


async def test_thinking_lines_become_reasoning(fake):
    fake.reply = "thinking"
    result = await collect(make_provider(fake.base_url).stream(ask()))
    assert result.reasoning == "".join(THINKING)
    assert result.text == REPLY


def ask_model(model: str, reasoning: ReasoningOptions | None = None) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("user", "Why is the sky blue?"),), reasoning=reasoning)


async def test_a_thinking_model_streams_thoughts_then_text_and_its_thinking_as_state(fake):
    result = await collect(make_provider(fake.base_url).stream(ask_model("gpt-oss:20b")))

    deltas = [(type(e), e.text) for e in result.events if isinstance(e, TextDelta | ReasoningDelta)]
    thoughts = [(ReasoningDelta, t) for t in GPT_OSS_THINKING]
    # The line that carries both the last thought and the first token yields them in that order.
    assert deltas == thoughts + [(TextDelta, t) for t in GPT_OSS_TOKENS]
    assert [type(e) for e in result.events[len(deltas) :]] == [ProviderState, Usage, Finish]
    # eval_count includes the thinking; Ollama reports no reasoning or cache breakdown.
    assert result.usage == Usage(PROMPT_EVAL_COUNT, len(GPT_OSS_TOKENS) + len(GPT_OSS_THINKING))
    assert result.events[len(deltas)] == ProviderState({"thinking": "".join(GPT_OSS_THINKING)})
    assert "think" not in fake.requests[-1].json  # no reasoning options: the model's own default


async def test_the_next_turn_hands_the_thinking_back_on_the_assistant_message(fake):
    first = await make_provider(fake.base_url).complete(ask_model("gpt-oss:20b"))
    request = ChatRequest(
        model="gpt-oss:20b",
        messages=(
            Message("user", "Why is the sky blue?"),
            Message("assistant", first.text, provider_state=first.provider_state),
            Message("user", "And sunsets?"),
        ),
    )
    await collect(make_provider(fake.base_url).stream(request))
    assert fake.requests[-1].json["messages"][1] == {
        "role": "assistant",
        "content": "".join(GPT_OSS_TOKENS),
        "thinking": "".join(GPT_OSS_THINKING),
    }


@pytest.mark.parametrize(
    ("model", "reasoning", "think"),
    [
        ("gpt-oss:20b", ReasoningOptions(effort="low"), "low"),
        ("gpt-oss:20b", ReasoningOptions(effort="high"), "high"),
        ("qwen3:8b", ReasoningOptions(effort="medium"), True),
        ("qwen3:8b", ReasoningOptions(effort="none"), False),
    ],
)
async def test_the_request_carries_think_for_an_accepted_effort(fake, model, reasoning, think):
    result = await collect(make_provider(fake.base_url).stream(ask_model(model, reasoning)))
    assert fake.requests[-1].json["think"] == think
    assert bool(result.reasoning) is (think is not False)


async def test_without_summary_the_thinking_is_not_returned(fake):
    result = await collect(
        make_provider(fake.base_url).stream(ask_model("gpt-oss:20b", ReasoningOptions(effort="medium", summary=False)))
    )
    assert (result.reasoning, result.text) == ("", "".join(GPT_OSS_TOKENS))
    assert not any(isinstance(e, ProviderState) for e in result.events)
    assert fake.requests[-1].json["think"] == "medium"


@pytest.mark.parametrize(
    ("model", "reasoning", "says"),
    [
        ("gpt-oss:20b", ReasoningOptions(effort="none"), "takes a reasoning effort of low, medium, high, not 'none'"),
        ("qwen3:8b", ReasoningOptions(effort="high"), "takes a reasoning effort of none, medium, not 'high'"),
        ("gpt-oss:20b", ReasoningOptions(budget_tokens=2048), "no thinking budget (it takes a reasoning effort of low"),
        (MODEL, ReasoningOptions(effort="low"), "takes no reasoning effort"),
    ],
)
async def test_an_effort_the_model_cannot_take_is_refused_before_any_request(fake, model, reasoning, says):
    with pytest.raises(errors.InvalidRequestError) as caught:
        await collect(make_provider(fake.base_url).stream(ask_model(model, reasoning)))
    assert repr(model) in caught.value.message and says in caught.value.message
    assert fake.requests == []


@pytest.mark.parametrize(("done_reason", "finish"), [("length", "length"), ("unload", "other"), ("", "stop")])
async def test_done_reasons(fake, done_reason, finish):
    fake.done_reason = done_reason
    result = await collect(make_provider(fake.base_url).stream(ask(max_tokens=9)))
    assert result.finish == finish


async def test_request_shape_system_options_and_images(fake):
    png, jpeg = png_bytes(), jpeg_bytes()
    request = ChatRequest(
        model="llava:7b",
        messages=(
            Message("system", "Be brief."),
            Message(
                "user",
                "What is in these?",
                attachments=(Attachment("a.png", "image/png", png), Attachment("b.jpg", "image/jpeg", jpeg)),
            ),
        ),
        temperature=0.4,
        top_p=0.8,
        max_tokens=64,
        stop=("###",),
    )
    await collect(make_provider(fake.base_url).stream(request))

    body = fake.requests[-1].json
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": "What is in these?",
            "images": [base64.b64encode(png).decode(), base64.b64encode(jpeg).decode()],
        },
    ]
    assert body["options"] == {"temperature": 0.4, "top_p": 0.8, "num_predict": 64, "stop": ["###"]}
    assert body["stream"] is True


async def test_pdf_is_refused_before_any_request(fake):
    request = ChatRequest(
        model=MODEL,
        messages=(Message("user", "read", attachments=(Attachment("report.pdf", "application/pdf", b"%PDF-1.4"),)),),
    )
    with pytest.raises(errors.UnsupportedAttachmentError) as caught:
        await collect(make_provider(fake.base_url).stream(request))
    assert "report.pdf" in str(caught.value) and "image/jpeg" in str(caught.value)
    assert fake.requests == []


async def test_unknown_model_is_model_not_found_with_ollamas_message(fake):
    with pytest.raises(errors.ModelNotFoundError) as caught:
        await collect(
            make_provider(fake.base_url).stream(ChatRequest(model="llama9", messages=(Message("user", "hi"),)))
        )
    assert caught.value.message == 'model "llama9" not found, try pulling it first'
    assert caught.value.status == 404


async def test_wrong_base_url_path_is_explained(fake):
    provider = make_provider(fake.base_url + "/something")
    with pytest.raises(errors.InvalidRequestError, match="no Ollama API at"):
        await collect(provider.stream(ask()))


@pytest.mark.parametrize("suffix", ["/api", "/v1", "/api/"])
async def test_pasted_api_suffix_is_tolerated(fake, suffix):
    result = await collect(make_provider(fake.base_url + suffix).stream(ask()))
    assert result.text == REPLY
    assert fake.requests[-1].path == "/api/chat"


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "invalid options", errors.InvalidRequestError),
        (401, "unauthorized", errors.AuthenticationError),
        (403, "forbidden", errors.PermissionDeniedError),
    ],
)
async def test_http_errors_keep_the_upstream_message(fake, status, message, expected):
    fake.fail_next(status, error_body(message))
    with pytest.raises(expected) as caught:
        await collect(make_provider(fake.base_url).stream(ask()))
    assert (caught.value.message, caught.value.status) == (message, status)
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, errors.RateLimitError),
        (500, errors.ProviderUnavailableError),
        (502, errors.ProviderUnavailableError),
        (503, errors.ProviderUnavailableError),  # "server busy, please try again"
    ],
)
async def test_retryable_errors_then_success_or_give_up(fake, status, expected):
    fake.fail_next(status, error_body("busy"), times=2, headers={"retry-after": "0"})
    assert (await collect(make_provider(fake.base_url).stream(ask()))).text == REPLY
    assert len(fake.requests) == 3

    fake.requests.clear()
    fake.fail_next(status, error_body("still busy"), times=3)
    with pytest.raises(expected, match="still busy"):
        await collect(make_provider(fake.base_url).stream(ask()))
    assert len(fake.requests) == 3


async def test_error_line_mid_stream_is_raised(fake):
    fake.stream_fault = StreamFault("error", after=3)
    seen = []
    with pytest.raises(errors.ProviderUnavailableError) as caught:
        async for event in make_provider(fake.base_url).stream(ask()):
            seen.append(event)
    assert caught.value.message == "an error was encountered while running the model"
    assert [e.text for e in seen] == TOKENS[:3]
    assert len(fake.requests) == 1


async def test_error_line_as_the_whole_body(fake):
    fake.fail_next(200, b'{"error":"model requires more system memory (8.0 GiB) than is available"}\n')
    with pytest.raises(errors.ProviderUnavailableError, match="more system memory"):
        await collect(make_provider(fake.base_url).stream(ask()))


async def test_malformed_line_is_a_protocol_error(fake):
    fake.stream_fault = StreamFault("malformed", after=2)
    with pytest.raises(errors.ProtocolError, match="malformed JSON"):
        await collect(make_provider(fake.base_url).stream(ask()))


async def test_dropped_connection_is_a_protocol_error(fake):
    fake.stream_fault = StreamFault("drop", after=2)
    with pytest.raises(errors.ProtocolError):
        await collect(make_provider(fake.base_url).stream(ask()))


async def test_stream_without_done_is_a_protocol_error(fake):
    fake.stream_fault = StreamFault("truncate", after=len(TOKENS))
    with pytest.raises(errors.ProtocolError, match="ended before"):
        await collect(make_provider(fake.base_url).stream(ask()))


async def test_stall_is_a_timeout_when_a_read_timeout_is_set(fake):
    fake.stream_fault = StreamFault("stall", after=2, seconds=5)
    provider = make_provider(fake.base_url, timeouts=Timeouts(read=0.3))
    with pytest.raises(errors.ProviderTimeoutError, match="stalled"):
        await collect(provider.stream(ask()))


async def test_a_slow_model_is_waited_for_by_default(fake):
    fake.stream_fault = StreamFault("stall", after=1, seconds=1.5)
    started = time.monotonic()
    result = await collect(make_provider(fake.base_url).stream(ask()))
    assert result.text == REPLY
    assert time.monotonic() - started >= 1.5


async def test_aclose_closes_the_upstream_at_once(fake):
    fake.long_tokens = 5000
    fake.stream_delay = 0.01
    await close_after_first_text(make_provider(fake.base_url).stream(ask()))
    assert await server_saw_disconnect(fake)


async def test_cancelling_the_task_closes_the_upstream(fake):
    fake.long_tokens = 5000
    fake.stream_delay = 0.01
    await cancel_after_first_text(make_provider(fake.base_url).stream(ask()))
    assert await server_saw_disconnect(fake)


async def test_long_stream(fake):
    fake.long_tokens = 400
    result = await collect(make_provider(fake.base_url).stream(ask()))
    assert result.text == "".join(long_tokens(400))


async def test_list_models_from_tags(fake):
    models = await make_provider(fake.base_url).list_models()
    assert [m.id for m in models] == ["llama3.2:latest", "llava:7b"]
    assert models[0].name == "llama3.2:latest 3.2B Q4_K_M"
    assert fake.requests[-1].path == "/api/tags"


async def test_validate_checks_reachability(fake):
    await make_provider(fake.base_url).validate_key()
    assert fake.requests[-1].path == "/api/version"


async def test_connection_refused_says_where_ollama_was_expected():
    base = f"http://127.0.0.1:{free_port()}"
    provider = make_provider(base)
    for call in (provider.validate_key(), collect(provider.stream(ask())), provider.list_models()):
        with pytest.raises(errors.ProviderConnectionError) as caught:
            await call
        assert f"is Ollama running at {base}?" in caught.value.message


async def test_cloud_key_is_sent_as_bearer_and_never_leaks(caplog):
    debug_logging(caplog)
    with FakeOllama(api_key=CLOUD_KEY) as cloud:
        provider = make_provider(cloud.base_url, key=CLOUD_KEY)
        result = await collect(provider.stream(ask()))
        assert result.text == REPLY
        assert cloud.requests[-1].headers["authorization"] == f"Bearer {CLOUD_KEY}"
        await provider.validate_key()
        assert cloud.requests[-1].path == "/api/tags"  # a key is checked where it is needed

        with pytest.raises(errors.AuthenticationError):  # no key configured: none is sent, and ollama.com refuses
            await collect(make_provider(cloud.base_url + "/api").stream(ask()))
        keyless_sent = cloud.requests[-1]

        wrong = make_provider(cloud.base_url, key="ollama-cloud-wrong-0000000000000")
        with pytest.raises(errors.AuthenticationError) as caught:
            await wrong.validate_key()
        cloud.stream_fault = StreamFault("error", after=1)
        with pytest.raises(errors.ProviderUnavailableError) as mid:
            await collect(provider.stream(ask()))
    texts = [repr(provider), str(caught.value), repr(caught.value), str(mid.value), repr(mid.value)]
    assert "authorization" not in keyless_sent.headers
    assert "finish reason=stop" in caplog.text
    assert_no_secret(CLOUD_KEY, caplog.text, *texts)
