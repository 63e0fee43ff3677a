"""The OpenAI-compatible plugin: base URL required, key optional, every common error shape."""

from __future__ import annotations

import openai
import pytest

from providers import errors
from providers.contract import ChatRequest, Message, ProviderState, ReasoningDelta, ReasoningOptions, TextDelta
from providers.factory import create_llm_provider
from tests.fakes.openai_dialect import FakeOpenAI, sse
from tests.fakes.samples import collect
from tests.plugins.openai_support import FLAVOURS, hello, make

COMPAT = FLAVOURS["openai-compatible"]


@pytest.fixture
def fake():
    with FakeOpenAI("compatible") as server:
        yield server


def test_a_base_url_is_required():
    with pytest.raises(errors.InvalidRequestError, match="needs a base URL"):
        create_llm_provider("OPENAI_COMPATIBLE", api_key=None, base_url=None)


async def test_without_a_key_no_authorization_header_is_sent(fake):
    result = await collect(make(COMPAT, fake, key=None).stream(hello("local")))
    assert result.text == COMPAT.recorded_text
    assert "authorization" not in fake.chat_requests[-1].headers
    await make(COMPAT, fake, key=None).validate_key()  # reachability: GET /models, no key needed
    assert "authorization" not in fake.requests[-1].headers


async def test_a_server_that_wants_a_key_refuses_a_missing_one(fake):
    fake.api_key = "local-secret"
    with pytest.raises(errors.AuthenticationError, match="Invalid API Key"):
        await make(COMPAT, fake, key=None).validate_key()


@pytest.mark.parametrize(
    ("status", "body", "expected", "message"),
    [
        (401, {"error": "Unauthorized"}, errors.AuthenticationError, "Unauthorized"),  # vLLM's key middleware
        (
            400,
            {
                "object": "error",
                "message": "max_tokens is too large",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
            errors.InvalidRequestError,
            "max_tokens is too large",
        ),  # older vLLM
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size",
                    "type": "exceed_context_size_error",
                }
            },
            errors.ContextLengthError,
            "the request exceeds the available context size",
        ),  # llama.cpp
        (
            503,
            {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}},
            errors.ProviderUnavailableError,
            "Loading model",
        ),
        (500, "Internal Server Error", errors.ProviderUnavailableError, "Internal Server Error"),
    ],
)
async def test_every_common_error_shape_keeps_its_message(fake, status, body, expected, message):
    fake.fail_next(status, body, headers={"retry-after": "0"}, times=3, content_type="application/json")
    with pytest.raises(expected) as caught:
        await collect(make(COMPAT, fake).stream(hello("local")))
    assert type(caught.value) is expected
    assert caught.value.message == message


async def test_server_that_omits_usage_and_done(fake):
    fake.reply(["local ", "reply"], usage=None, done=False)
    result = await collect(make(COMPAT, fake).stream(hello("local")))
    assert result.text == "local reply"
    assert result.usage is None
    assert result.finish == "stop"


async def test_usage_only_chunk_with_null_or_missing_choices(fake):
    fake.chunks = [
        sse({"choices": [{"index": 0, "delta": {"content": "a"}}]}),
        sse({"choices": None}),
        sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "timings": {"predicted_n": 1}}),
        sse({"usage": {"prompt_tokens": 4, "completion_tokens": 1}}),
        b"data: [DONE]\n\n",
    ]
    result = await collect(make(COMPAT, fake).stream(hello("local")))
    assert (result.text, result.finish) == ("a", "length")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (4, 1)


async def test_string_error_in_a_stream_chunk(fake):
    fake.chunks = [sse({"choices": [{"index": 0, "delta": {"content": "a"}}]}), sse({"error": "model crashed"})]
    with pytest.raises(errors.ProviderUnavailableError, match="model crashed"):
        await collect(make(COMPAT, fake).stream(hello("local")))


async def test_models_read_the_context_size_llama_cpp_reports(fake):
    models = {m.id: m for m in await make(COMPAT, fake).list_models()}
    assert models["gpt-4o-mini"].context_window == 8192


def test_no_read_timeout_by_default_for_slow_local_servers():
    provider = create_llm_provider("OPENAI_COMPATIBLE", base_url="http://127.0.0.1:9/v1")
    assert provider.timeouts.read is None
    assert provider.timeouts.connect == 10.0


async def test_a_server_that_ignores_stream_true_and_answers_json(fake):
    completion = {
        "id": "cmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "All at once."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    fake.fail_next(200, completion)
    result = await collect(make(COMPAT, fake).stream(hello("local")))
    assert (result.text, result.finish) == ("All at once.", "stop")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (7, 3)


async def test_a_json_answer_carrying_an_error_raises_it(fake):
    fake.fail_next(200, {"error": {"message": "model not loaded", "type": "unavailable_error", "code": 503}})
    with pytest.raises(errors.ProviderUnavailableError, match="model not loaded"):
        await collect(make(COMPAT, fake).stream(hello("local")))


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])  # llama.cpp, vLLM, DeepSeek; Ollama's /v1
async def test_a_reasoning_stream_gives_reasoning_then_text_and_the_detailed_usage(fake, field):
    fake.reply(
        ["Paris."],
        reasoning=["The capital", " of France."],
        reasoning_field=field,
        usage=(30, 11),
        cached=16,
        cache_write=0,
        reasoning_tokens=7,
    )
    result = await collect(make(COMPAT, fake).stream(hello("qwen3-8b")))
    deltas = [(type(e), e.text) for e in result.events if isinstance(e, TextDelta | ReasoningDelta)]
    assert deltas == [(ReasoningDelta, "The capital"), (ReasoningDelta, " of France."), (TextDelta, "Paris.")]
    usage = result.usage
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (
        30,
        16,
        0,
        7,
    )
    assert not [e for e in result.events if isinstance(e, ProviderState)]


async def test_reasoning_text_is_never_sent_back_as_text(fake):
    fake.reply(["Paris."], reasoning=["The capital of France."])
    provider = make(COMPAT, fake)
    first = await provider.complete(hello("qwen3-8b"))
    assert first.reasoning == "The capital of France."
    turn = (Message("user", "Capital?"), Message("assistant", first.text), Message("user", "And Spain?"))
    await collect(provider.stream(ChatRequest(model="qwen3-8b", messages=turn)))
    assert fake.chat_requests[-1].json["messages"][1] == {"role": "assistant", "content": "Paris."}


async def test_a_reasoning_effort_is_refused_before_any_request(fake):
    with pytest.raises(errors.InvalidRequestError, match=r"'qwen3-8b' takes no reasoning effort"):
        await collect(make(COMPAT, fake).stream(hello("qwen3-8b", reasoning=ReasoningOptions(effort="low"))))
    assert fake.requests == []


async def test_the_official_client_reads_a_reasoning_content_stream(fake):
    fake.reply(["Paris."], reasoning=["The capital", " of France."], usage=(30, 11), cached=16, reasoning_tokens=7)
    async with openai.AsyncOpenAI(api_key="sk-local", base_url=fake.base_url, max_retries=0) as api:
        stream = await api.chat.completions.create(
            model="qwen3-8b", messages=[{"role": "user", "content": "Capital?"}], stream=True
        )
        reasoning, text, usage = [], [], None
        async for chunk in stream:
            for choice in chunk.choices:
                reasoning.append((choice.delta.model_extra or {}).get("reasoning_content") or "")
                text.append(choice.delta.content or "")
            usage = chunk.usage or usage
    assert ("".join(reasoning), "".join(text)) == ("The capital of France.", "Paris.")
    assert usage.prompt_tokens_details.cached_tokens == 16
    assert usage.completion_tokens_details.reasoning_tokens == 7


async def test_a_whole_completion_carries_the_scripted_reasoning(fake):
    fake.reply(["Paris."], reasoning=["The capital", " of France."])
    async with openai.AsyncOpenAI(api_key="sk-local", base_url=fake.base_url, max_retries=0) as api:
        answer = await api.chat.completions.create(model="qwen3-8b", messages=[{"role": "user", "content": "Capital?"}])
    message = answer.choices[0].message
    assert (message.model_extra["reasoning_content"], message.content) == ("The capital of France.", "Paris.")
