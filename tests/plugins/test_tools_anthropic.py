"""Tool calling through the Anthropic plugin, against the local Messages API replaying the recorded tool_use
streams (and streams assembled in their shape) over real sockets; every next turn is checked on the JSON the
server received."""

from __future__ import annotations

import json

import anthropic
import pytest

from providers import errors
from providers.contract import ChatRequest, Message, ReasoningOptions, TextDelta, ToolCall, ToolSpec
from providers.factory import create_llm_provider
from tests.fakes.anthropic import TEXTS, FakeAnthropic
from tests.fakes.fixtures import fixture_bytes
from tests.fakes.samples import FAST_RETRY, collect

KEY = "sk-ant-api03-fake-tools-test-key-0001"
MODEL = "claude-haiku-4-5-20251001"
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
RATE = ToolSpec(
    "get_exchange_rate",
    "An exchange rate",
    {"type": "object", "properties": {"from_currency": {"type": "string"}, "to_currency": {"type": "string"}}},
)
# The exchange-rate call's partial_json pieces as R3.3 quotes them from a real stream.
RATE_PIECES = ['{"from_', "curre", 'ncy"', ': "US', 'D"', ', "', 'to_currency"', ': "EUR"}']
FIXED_VERSION = ToolSpec("fixed_version", "Return a fixed test version string", {"properties": {}, "type": "object"})
FIXED_PROMPT = (
    "Use the fixed_version tool. Then tell me the version and make one short joke about it. Think about it first."
)


@pytest.fixture
def fake():
    with FakeAnthropic(api_key=KEY) as server:
        yield server


def provider_for(fake: FakeAnthropic):
    provider = create_llm_provider("ANTHROPIC", api_key=KEY, base_url=fake.base_url)
    provider.retry = FAST_RETRY
    return provider


def recorded_request(name: str) -> dict:
    return json.loads(fixture_bytes(f"{name}.request.txt").decode().split("\n", 1)[1])


def ask(text: str = "Weather in Paris and the dollar in euros?", **kwargs) -> ChatRequest:
    kwargs.setdefault("tools", (WEATHER, RATE))
    return ChatRequest(model=MODEL, messages=(Message("user", text),), **kwargs)


def parallel(fake: FakeAnthropic) -> None:
    fake.reply = "tools"
    fake.tool_text = "Let me look both up."
    fake.tool_calls = [
        ("toolu_01RateCall", "get_exchange_rate", RATE_PIECES),
        ("toolu_01WeatherCall", "get_weather", ['{"city": "Par', 'is"}']),
    ]


# ---- (a) one call, (b) two in parallel ----------------------------------------------------------


async def test_the_recorded_call_is_one_tool_call_with_dict_arguments_then_tool_calls(fake):
    fake.reply = "tool_use"
    tool = ToolSpec("pelican_name_generator", "", {"properties": {}, "type": "object"})
    result = await collect(provider_for(fake).stream(ask("Generate one name for a pet pelican", tools=(tool,))))

    assert [e for e in result.events if isinstance(e, ToolCall)] == [
        ToolCall("toolu_01CzN6riCPqw4pVSuTd9Dwn7", "pelican_name_generator", {})
    ]
    assert [type(e).__name__ for e in result.events] == ["ToolCall", "Usage", "Finish"]
    assert result.finish == "tool_calls"
    body = fake.requests[-1].json
    recorded = recorded_request("anthropic_stream_tool_use.sse")
    assert body["tools"] == recorded["tools"]
    assert body["messages"] == recorded["messages"]
    assert "tool_choice" not in body  # auto is the API's default


async def test_two_parallel_calls_are_two_tool_calls_with_their_streamed_arguments(fake):
    parallel(fake)
    result = await provider_for(fake).complete(ask())

    assert result.text == "Let me look both up."
    assert result.tool_calls == (
        ToolCall("toolu_01RateCall", "get_exchange_rate", {"from_currency": "USD", "to_currency": "EUR"}),
        ToolCall("toolu_01WeatherCall", "get_weather", {"city": "Paris"}),
    )
    assert result.finish_reason == "tool_calls"
    assert fake.requests[-1].json["tools"] == [
        {"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER.parameters},
        {"name": "get_exchange_rate", "description": "An exchange rate", "input_schema": RATE.parameters},
    ]


async def test_partial_json_that_never_forms_an_object_is_a_call_with_invalid_arguments(fake):
    fake.reply = "tools"
    fake.tool_calls = [("toolu_01Cut", "get_weather", ['{"city": "Par'])]
    result = await provider_for(fake).complete(ask())

    assert result.tool_calls == (ToolCall("toolu_01Cut", "get_weather", {}, invalid_arguments='{"city": "Par'),)
    # handed back, the call carries an empty object (the API takes only one) and the host's error result
    messages = (
        Message("user", "Weather?"),
        Message("assistant", "", tool_calls=result.tool_calls),
        Message("tool", "The arguments were not JSON.", tool_call_id="toolu_01Cut", is_error=True),
    )
    fake.reply = "text"
    request = ChatRequest(model=MODEL, messages=messages, tools=(WEATHER,), options={"prompt_caching": False})
    await collect(provider_for(fake).stream(request))
    sent = fake.requests[-1].json["messages"]
    assert sent[1]["content"] == [{"type": "tool_use", "id": "toolu_01Cut", "name": "get_weather", "input": {}}]
    assert sent[2]["content"][0]["is_error"] is True


# ---- (c) the next turn, (d) the final answer -----------------------------------------------------


async def test_the_next_turn_sends_the_signed_thinking_before_tool_use_then_the_result_as_recorded(fake):
    provider = provider_for(fake)
    thinking = ReasoningOptions(budget_tokens=1024)
    first_messages = (Message("user", FIXED_PROMPT),)
    fake.reply = "thinking_tool_use"
    options = {"prompt_caching": False}
    first = await provider.complete(
        ChatRequest(model=MODEL, messages=first_messages, tools=(FIXED_VERSION,), reasoning=thinking, options=options)
    )
    assert first.tool_calls == (ToolCall("toolu_01825dXWLSoJwCst1qTsiWdb", "fixed_version", {}),)

    (call,) = first.tool_calls
    history = (
        *first_messages,
        Message("assistant", first.text, provider_state=first.provider_state, tool_calls=first.tool_calls),
        Message("tool", "0.32a0", tool_call_id=call.id, tool_name=call.name),
    )
    fake.reply = "thinking_tool_use_turn2"
    final = await collect(
        provider.stream(
            ChatRequest(model=MODEL, messages=history, tools=(FIXED_VERSION,), reasoning=thinking, options=options)
        )
    )

    body = fake.requests[-1].json
    recorded = recorded_request("anthropic_stream_thinking_tool_use_turn2.sse")
    assert body["messages"] == recorded["messages"]  # the thinking block, signed, then tool_use; then tool_result
    assert [b["type"] for b in body["messages"][1]["content"]] == ["thinking", "tool_use"]
    assert body["tools"] == recorded["tools"]
    assert (final.text, final.finish) == (TEXTS["thinking_tool_use_turn2"], "stop")
    assert not [e for e in final.events if isinstance(e, ToolCall)]


async def test_parallel_results_go_back_in_one_user_turn_in_order_then_the_answer(fake):
    parallel(fake)
    provider = provider_for(fake)
    first = await provider.complete(ask())
    rate, weather = first.tool_calls
    history = (
        Message("user", "Weather in Paris and the dollar in euros?"),
        Message("assistant", first.text, tool_calls=first.tool_calls),
        Message("tool", "0.92", tool_call_id=rate.id, tool_name=rate.name),
        Message("tool", "weather service down", tool_call_id=weather.id, tool_name=weather.name, is_error=True),
        Message("user", "Be brief."),
    )
    fake.reply = "text"
    final = await collect(
        provider.stream(
            ChatRequest(model=MODEL, messages=history, tools=(WEATHER, RATE), options={"prompt_caching": False})
        )
    )

    assistant, results = fake.requests[-1].json["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look both up."},
            {"type": "tool_use", "id": rate.id, "name": rate.name, "input": rate.arguments},
            {"type": "tool_use", "id": weather.id, "name": weather.name, "input": {"city": "Paris"}},
        ],
    }
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01RateCall", "content": "0.92"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01WeatherCall",
                "content": "weather service down",
                "is_error": True,
            },
            {"type": "text", "text": "Be brief."},
        ],
    }
    assert (final.text, final.finish) == (TEXTS["text"], "stop")
    assert final.events[0] == TextDelta("Hello")


async def test_with_caching_on_the_breakpoint_sits_on_the_last_tool_use_never_on_thinking(fake):
    thinking = ReasoningOptions(budget_tokens=1024)
    state = [{"type": "thinking", "thinking": "t", "signature": "sig"}]
    calls = (
        ToolCall("toolu_01A", "get_weather", {"city": "Paris"}),
        ToolCall("toolu_01B", "get_weather", {"city": "Oslo"}),
    )
    history = (
        Message("user", "Weather in Paris and Oslo?"),
        Message("assistant", "", provider_state=state, tool_calls=calls),
        Message("tool", "sunny", tool_call_id="toolu_01A"),
        Message("tool", "snow", tool_call_id="toolu_01B"),
    )
    await collect(
        provider_for(fake).stream(ChatRequest(model=MODEL, messages=history, tools=(WEATHER,), reasoning=thinking))
    )

    content = fake.requests[-1].json["messages"][1]["content"]  # the fake refused nothing the API would
    assert content[0] == state[0]
    assert [("cache_control" in block) for block in content] == [False, False, True]
    assert content[-1]["cache_control"] == {"type": "ephemeral"}


# ---- what is sent: no tools, tool_choice ----------------------------------------------------------


async def test_no_tools_send_no_tools_key(fake):
    await collect(provider_for(fake).stream(ask(tools=())))
    body = fake.requests[-1].json
    assert "tools" not in body and "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", None),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ("get_weather", {"type": "tool", "name": "get_weather"}),
    ],
)
async def test_tool_choice_maps_to_the_apis_own(fake, choice, sent):
    await collect(provider_for(fake).stream(ask(tool_choice=choice)))
    assert fake.requests[-1].json.get("tool_choice") == sent


async def test_a_tool_choice_naming_a_tool_not_offered_is_refused_before_any_request(fake):
    with pytest.raises(errors.InvalidRequestError, match="'get_time'"):
        await collect(provider_for(fake).stream(ask(tool_choice="get_time")))
    assert fake.requests == []


async def test_a_forced_tool_choice_while_thinking_is_refused_before_any_request(fake):
    request = ask(tool_choice="required", reasoning=ReasoningOptions(budget_tokens=1024))
    with pytest.raises(errors.InvalidRequestError, match="forced tool call"):
        await collect(provider_for(fake).stream(request))
    assert fake.requests == []


async def test_a_history_of_calls_without_tools_now_declares_them_and_calls_none(fake):
    history = (
        Message("user", "Weather?"),
        Message("assistant", "", tool_calls=(ToolCall("toolu_01A", "get_weather", {"city": "Paris"}),)),
        Message("tool", "sunny", tool_call_id="toolu_01A"),
    )
    result = await collect(provider_for(fake).stream(ChatRequest(model=MODEL, messages=history)))

    body = fake.requests[-1].json
    assert body["tools"] == [{"name": "get_weather", "description": "", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "none"}
    assert result.finish == "stop"


async def test_call_ids_another_provider_gave_are_rewritten_alike_on_the_call_and_its_result(fake):
    history = (
        Message("user", "Weather?"),
        Message("assistant", "", tool_calls=(ToolCall("functions.get_weather:0", "get_weather", {"city": "Paris"}),)),
        Message("tool", "sunny", tool_call_id="functions.get_weather:0"),
    )
    request = ChatRequest(model=MODEL, messages=history, tools=(WEATHER,), options={"prompt_caching": False})
    result = await collect(provider_for(fake).stream(request))  # the fake, like the API, checks the id's pattern

    call, answer = fake.requests[-1].json["messages"][1:]
    assert call["content"][0]["id"] == answer["content"][0]["tool_use_id"] == "functions_get_weather_0"
    assert result.finish == "stop"


async def test_the_official_client_reads_the_assembled_parallel_calls_alike(fake):
    """The assembled stream is the API's own shape: the official client reads the same two calls."""
    parallel(fake)
    client = anthropic.AsyncAnthropic(base_url=fake.origin, api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "Weather in Paris and the dollar in euros?"}]
    async with client.messages.stream(model=MODEL, max_tokens=1024, messages=messages) as stream:
        message = await stream.get_final_message()

    uses = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert uses == [
        ("toolu_01RateCall", "get_exchange_rate", {"from_currency": "USD", "to_currency": "EUR"}),
        ("toolu_01WeatherCall", "get_weather", {"city": "Paris"}),
    ]
    assert message.stop_reason == "tool_use"
