"""The Grok plugin on its default API, xAI's Responses API: encrypted reasoning round-tripped in its
place (xAI's reasoning items may have no id), before the calls of a turn that called tools, the effort
only where the model takes one, usage with cached and reasoning tokens, and Chat Completions as the opt-in.
Real sockets, through providers.factory.

No recording of xAI's Responses stream exists in tests/fakes/recordings; the scripted streams follow the
shapes docs.x.ai documents (PROTOCOLS-reasoning-tools.md R5), and the OpenAI recording (the same events)
is replayed through the plugin too.
"""

from __future__ import annotations

import pytest

from providers import errors
from providers.contract import (
    ChatRequest,
    Message,
    ProviderState,
    ReasoningDelta,
    ReasoningOptions,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from providers.factory import create_llm_provider
from tests.fakes.openai_responses import FakeResponses
from tests.fakes.samples import collect
from tests.plugins.test_openai_responses import RECORDED_REASONING, RECORDED_SUMMARY, RECORDED_TEXT

KEY = "xai-Zx9secretvalue-for-tests-0002"
ENCRYPTED = "Hfq+g7jQ4QfQnY0/xai+encrypted+reasoning=="


@pytest.fixture
def fake():
    with FakeResponses("xai") as server:
        yield server


def make(fake: FakeResponses, key: str | None = KEY):
    return create_llm_provider("GROK", api_key=key, base_url=fake.base_url)


def ask(model: str = "grok-4.3", *messages: Message, **kwargs) -> ChatRequest:
    return ChatRequest(model=model, messages=messages or (Message("user", "What is 101*3?"),), **kwargs)


def xai_reply(fake: FakeResponses) -> None:
    """xAI's shape: a reasoning item without an id, encrypted content on it, usage with cached tokens."""
    fake.reply(
        ["101 times 3", " is 303."],
        reasoning=["Multiplying 101 by 3."],
        usage=(32, 103),
        cached=6,
        reasoning_tokens=94,
        encrypted=ENCRYPTED,
        item_id=None,
    )


async def test_a_reasoning_stream_yields_reasoning_text_state_usage_in_order(fake):
    xai_reply(fake)
    result = await collect(make(fake).stream(ask(reasoning=ReasoningOptions(effort="low"))))
    deltas = [(type(e), e.text) for e in result.events if isinstance(e, TextDelta | ReasoningDelta)]
    assert deltas == [
        (ReasoningDelta, "Multiplying 101 by 3."),
        (TextDelta, "101 times 3"),
        (TextDelta, " is 303."),
    ]
    assert result.usage == Usage(32, 103, cached_input_tokens=6, reasoning_tokens=94)
    assert [type(e).__name__ for e in result.events][-3:] == ["ProviderState", "Usage", "Finish"]


async def test_the_request_is_stateless_with_encrypted_reasoning_and_the_effort(fake):
    xai_reply(fake)
    await collect(make(fake).stream(ask("grok-4.3", reasoning=ReasoningOptions(effort="low"), max_tokens=256)))
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/responses")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": "grok-4.3",
        "input": [{"role": "user", "content": "What is 101*3?"}],
        "stream": True,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "low"},  # xAI writes no summary to ask for
        "max_output_tokens": 256,
    }


async def test_the_next_turn_sends_the_reasoning_item_back_exactly_as_received(fake):
    xai_reply(fake)
    provider = make(fake)
    first = await provider.complete(ask())
    history = (
        Message("user", "What is 101*3?"),
        Message("assistant", first.text, provider_state=first.provider_state),
        Message("user", "And 101*4?"),
    )
    xai_reply(fake)
    await collect(provider.stream(ask("grok-4.3", *history)))
    assert fake.responses_requests[-1].json["input"] == [
        {"role": "user", "content": "What is 101*3?"},
        {
            "type": "reasoning",
            "encrypted_content": ENCRYPTED,
            "summary": [{"type": "summary_text", "text": "Multiplying 101 by 3."}],
        },
        {"role": "assistant", "content": "101 times 3 is 303."},
        {"role": "user", "content": "And 101*4?"},
    ]


async def test_the_recorded_responses_stream_reads_the_same_through_grok(fake):
    fake.responses_fixture = "openai_responses_stream_reasoning_summary.sse"
    result = await collect(make(fake).stream(ask("grok-4.3")))
    assert (result.text, result.reasoning) == (RECORDED_TEXT, RECORDED_SUMMARY)
    state = next(e for e in result.events if isinstance(e, ProviderState))
    assert state.value["items"] == RECORDED_REASONING


@pytest.mark.parametrize(
    ("model", "reasoning", "words"),
    [
        ("grok-4", ReasoningOptions(effort="high"), ["'grok-4'", "takes no reasoning effort"]),
        ("grok-4-fast-reasoning", ReasoningOptions(effort="low"), ["'grok-4-fast-reasoning'", "no reasoning effort"]),
        ("grok-3-mini", ReasoningOptions(effort="medium"), ["'grok-3-mini'", "low, high", "'medium'"]),
        ("grok-4.3", ReasoningOptions(effort="xhigh"), ["'grok-4.3'", "none, low, medium, high"]),
        ("grok-3", ReasoningOptions(effort="low"), ["'grok-3'", "takes no reasoning effort"]),
        ("grok-4.3", ReasoningOptions(budget_tokens=2048), ["'grok-4.3'", "no thinking budget"]),
    ],
)
async def test_an_effort_the_model_cannot_take_is_refused_before_any_request(fake, model, reasoning, words):
    with pytest.raises(errors.InvalidRequestError) as refused:
        await collect(make(fake).stream(ask(model, reasoning=reasoning)))
    assert all(word in refused.value.message for word in words), refused.value.message
    assert fake.requests == []


@pytest.mark.parametrize(
    ("model", "refused"),
    [("grok-4", ("stop",)), ("grok-3-mini", ("stop",)), ("grok-4.3", ("stop",)), ("grok-3", ())],
)
def test_reasoning_models_refuse_stop_sequences(model, refused):
    from providers.reasoning import refused_parameters
    from providers.registry import registry

    config = registry.get("GROK").manifest.provider_config
    assert refused_parameters(config, model) == refused


async def test_grok_3_mini_takes_low_or_high(fake):
    xai_reply(fake)
    await collect(make(fake).stream(ask("grok-3-mini", reasoning=ReasoningOptions(effort="high"))))
    assert fake.responses_requests[-1].json["reasoning"] == {"effort": "high"}


async def test_a_bad_key_on_the_responses_api_is_an_authentication_error(fake):
    fake.api_key = KEY
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(make(fake, key="xai-wrong").stream(ask()))
    assert caught.value.status == 400
    assert caught.value.message.startswith("Incorrect API key provided")


async def test_the_responses_api_is_the_default_and_chat_completions_the_opt_in(fake):
    provider = make(fake)
    assert provider.base_url == fake.base_url
    assert create_llm_provider("GROK", api_key=KEY).base_url == "https://api.x.ai/v1"
    await collect(provider.stream(ask("grok-3")))
    await collect(provider.stream(ask("grok-3", options={"api": "chat_completions"})))
    assert [r.path for r in fake.requests] == ["/v1/responses", "/v1/chat/completions"]
    assert provider.config.apis == ("responses", "chat_completions")


async def test_on_chat_completions_the_effort_goes_as_reasoning_effort(fake):
    chat = {"api": "chat_completions"}
    await collect(make(fake).stream(ask("grok-3-mini", reasoning=ReasoningOptions(effort="high"), options=chat)))
    assert fake.chat_requests[-1].json["reasoning_effort"] == "high"


# ---- tool calls: xAI's round trip (docs.x.ai troubleshooting-reasoning) -----------------------------

TEMPERATURE = ToolSpec("get_temperature", "The temperature somewhere.", {"type": "object", "properties": {}})


async def test_a_turn_of_calls_goes_back_as_xai_documents_it(fake):
    """Every item of the turn in order: the reasoning item (no id, encrypted), the call (xAI's hyphenated
    call id), its output; the tools go out without ``strict``."""
    fake.queue(
        fake.scripted(
            reasoning=["Look it up."],
            function_calls=[("call-5faadddf-0", "get_temperature", '{"location":"Paris"}')],
            encrypted=ENCRYPTED,
            item_id=None,
        )
    )
    fake.queue(fake.scripted(["15°C in Paris."]))
    provider = make(fake)
    question = Message("user", "What is the temperature in Paris?")
    first = await provider.complete(ask("grok-4.3", question, tools=(TEMPERATURE,)))
    assert first.tool_calls == (ToolCall("call-5faadddf-0", "get_temperature", {"location": "Paris"}),)
    assert first.finish_reason == "tool_calls"
    assert fake.responses_requests[-1].json["tools"] == [
        {
            "type": "function",
            "name": "get_temperature",
            "description": TEMPERATURE.description,
            "parameters": {"type": "object", "properties": {}},
        }
    ]
    turn = Message("assistant", first.text, provider_state=first.provider_state, tool_calls=first.tool_calls)
    output = Message("tool", '{"temperature":15}', tool_call_id="call-5faadddf-0", tool_name="get_temperature")
    final = await provider.complete(ask("grok-4.3", question, turn, output, tools=(TEMPERATURE,)))
    assert (final.text, final.finish_reason, final.tool_calls) == ("15°C in Paris.", "stop", ())
    assert fake.responses_requests[-1].json["input"] == [
        {"role": "user", "content": "What is the temperature in Paris?"},
        {
            "type": "reasoning",
            "encrypted_content": ENCRYPTED,
            "summary": [{"type": "summary_text", "text": "Look it up."}],
        },
        {
            "type": "function_call",
            "call_id": "call-5faadddf-0",
            "name": "get_temperature",
            "arguments": '{"location":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call-5faadddf-0", "output": '{"temperature":15}'},
    ]
