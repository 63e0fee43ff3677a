"""The OpenAI-compatible plugin: base URL required, key optional, every common error shape."""

from __future__ import annotations

import pytest

from providers import errors
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
