"""Tool calling through the Ollama plugin, against the local native API (/api/chat NDJSON) streaming the call
lines Ollama's API docs show (and lines in their shape) over real sockets; every next turn is checked on the
JSON the server received."""

from __future__ import annotations

import ollama
import pytest

from providers import errors
from providers.contract import ChatRequest, Message, ProviderState, ReasoningOptions, ToolCall, ToolSpec
from providers.factory import create_llm_provider
from providers.tool_mapping import fallback_call_id
from tests.fakes.ollama import GPT_OSS_THINKING, REPLY, FakeOllama
from tests.fakes.samples import collect

MODEL = "llama3.2"
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
DOCS_MARK = "2025-07-07T20:22:19.184789Z"  # the docs' first line's created_at, which marks the reply's calls
WEATHER_ID, TIME_ID = fallback_call_id(0, "get_weather", DOCS_MARK), fallback_call_id(1, "get_time", DOCS_MARK)
TIME = ToolSpec("get_time", "The time in a city", {"type": "object", "properties": {"city": {"type": "string"}}})


@pytest.fixture
def fake():
    with FakeOllama() as server:
        yield server


def provider_for(fake: FakeOllama):
    return create_llm_provider("OLLAMA", base_url=fake.origin)


def ask(model: str = MODEL, **kwargs) -> ChatRequest:
    kwargs.setdefault("tools", (WEATHER, TIME))
    return ChatRequest(model=model, messages=(Message("user", "What is the weather in Tokyo?"),), **kwargs)


def wire_tool(tool: ToolSpec) -> dict:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


# ---- (a) one call, (b) two in parallel ----------------------------------------------------------


async def test_the_docs_call_is_one_tool_call_with_object_arguments_then_tool_calls(fake):
    fake.reply = "tool_call"
    result = await collect(provider_for(fake).stream(ask()))

    assert [e for e in result.events if isinstance(e, ToolCall)] == [
        ToolCall(WEATHER_ID, "get_weather", {"city": "Tokyo"})  # no id from the server: ours
    ]
    assert [type(e).__name__ for e in result.events] == ["ToolCall", "Usage", "Finish"]
    assert result.finish == "tool_calls"  # done_reason says stop
    assert fake.requests[-1].json["tools"] == [wire_tool(WEATHER), wire_tool(TIME)]


async def test_two_parallel_calls_with_the_servers_ids_are_two_tool_calls(fake):
    fake.reply, fake.tool_call_ids = "tool_call", True
    fake.tool_calls = [("get_weather", {"city": "Tokyo"}), ("get_time", {"city": "Tokyo"})]
    result = await provider_for(fake).complete(ask())

    assert result.tool_calls == (
        ToolCall("call_00tq7xz9", "get_weather", {"city": "Tokyo"}),
        ToolCall("call_01tq7xz9", "get_time", {"city": "Tokyo"}),
    )
    assert result.finish_reason == "tool_calls"


# ---- (c) the next turn, (d) the final answer -----------------------------------------------------


async def test_the_next_turn_carries_object_arguments_and_role_tool_messages_then_the_answer(fake):
    fake.reply, fake.tool_calls = "tool_call", [("get_weather", {"city": "Tokyo"}), ("get_time", {"city": "Tokyo"})]
    provider = provider_for(fake)
    first = await provider.complete(ask())
    weather, clock = first.tool_calls
    history = (
        Message("user", "What is the weather in Tokyo?"),
        Message("assistant", first.text, tool_calls=first.tool_calls),
        Message("tool", "22°C", tool_call_id=weather.id, tool_name="get_weather"),
        Message("tool", "clock service down", tool_call_id=clock.id, is_error=True),  # the name found from its call
    )
    fake.reply = "text"
    final = await collect(provider.stream(ChatRequest(model=MODEL, messages=history, tools=(WEATHER, TIME))))

    messages = fake.requests[-1].json["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": WEATHER_ID,
                "type": "function",
                "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}},
            },
            {
                "id": TIME_ID,
                "type": "function",
                "function": {"index": 1, "name": "get_time", "arguments": {"city": "Tokyo"}},
            },
        ],
    }
    assert messages[2:] == [
        {"role": "tool", "content": "22°C", "tool_name": "get_weather", "tool_call_id": WEATHER_ID},
        {"role": "tool", "content": "clock service down", "tool_name": "get_time", "tool_call_id": TIME_ID},
    ]
    assert (final.text, final.finish) == (REPLY, "stop")


async def test_a_thinking_model_thinks_calls_and_hands_its_thinking_back_with_the_calls(fake):
    fake.reply = "tool_call"
    provider = provider_for(fake)
    first = await collect(provider.stream(ask("gpt-oss:20b", reasoning=ReasoningOptions(effort="low"))))

    thought = "".join(GPT_OSS_THINKING[:-1])
    assert first.reasoning == thought
    kinds = [type(e).__name__ for e in first.events]
    assert kinds[-4:] == ["ToolCall", "ProviderState", "Usage", "Finish"]
    (state,) = [e.value for e in first.events if isinstance(e, ProviderState)]
    (call,) = [e for e in first.events if isinstance(e, ToolCall)]
    history = (
        Message("user", "What is the weather in Tokyo?"),
        Message("assistant", "", provider_state=state, tool_calls=(call,)),
        Message("tool", "22°C", tool_call_id=call.id, tool_name=call.name),
    )
    fake.reply = "text"
    await collect(provider.stream(ChatRequest(model="gpt-oss:20b", messages=history, tools=(WEATHER,))))

    assistant = fake.requests[-1].json["messages"][1]
    assert assistant["thinking"] == thought
    assert assistant["tool_calls"][0]["function"]["arguments"] == {"city": "Tokyo"}


# ---- what is sent: no tools, tool_choice, models without tools -----------------------------------


async def test_no_tools_send_no_tools_key(fake):
    await collect(provider_for(fake).stream(ask(tools=())))
    assert "tools" not in fake.requests[-1].json


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", [WEATHER, TIME]),
        ("required", [WEATHER, TIME]),  # Ollama cannot force a call: the tools are offered
        ("none", None),
        ("get_time", [TIME]),
    ],
)
async def test_tool_choice_becomes_the_tools_offered(fake, choice, sent):
    await collect(provider_for(fake).stream(ask(tool_choice=choice)))
    tools = fake.requests[-1].json.get("tools")
    assert tools == ([wire_tool(t) for t in sent] if sent is not None else None)


async def test_a_tool_choice_naming_a_tool_not_offered_is_refused_before_any_request(fake):
    with pytest.raises(errors.InvalidRequestError, match="'get_news'"):
        await collect(provider_for(fake).stream(ask(tool_choice="get_news")))
    assert fake.requests == []


async def test_a_model_the_manifest_says_cannot_call_tools_is_refused_before_any_request(fake):
    with pytest.raises(errors.InvalidRequestError, match="cannot call tools"):
        await collect(provider_for(fake).stream(ask("llava:7b")))
    assert fake.requests == []
    result = await collect(provider_for(fake).stream(ask("llava:7b", tools=())))  # without tools it answers
    assert result.text == REPLY


def test_the_manifest_names_the_families_without_tools():
    config = create_llm_provider("OLLAMA", base_url="http://localhost:11434").config
    refused = [
        name for name in ("gemma3:4b", "llava:7b", "llama3:8b", "phi4:14b") if config.rule_for(name).tools is False
    ]
    assert refused == ["gemma3:4b", "llava:7b", "llama3:8b", "phi4:14b"]
    for name in ("llama3.1:8b", "llama3.2", "phi4-mini", "qwen3:8b", "gpt-oss:20b", "mistral"):
        rule = config.rule_for(name)
        assert rule is None or rule.tools is True, name


async def test_the_official_client_reads_the_call_lines_alike(fake):
    """The call lines are the API's own shape: the official client reads the same calls, arguments as objects."""
    fake.reply, fake.tool_call_ids = "tool_call", True
    fake.tool_calls = [("get_weather", {"city": "Tokyo"}), ("get_time", {"city": "Tokyo"})]
    calls, last = [], None
    client = ollama.AsyncClient(host=fake.origin)
    messages = [{"role": "user", "content": "Weather and time in Tokyo?"}]
    async for part in await client.chat(model=MODEL, messages=messages, tools=[wire_tool(WEATHER)], stream=True):
        calls += [(c.function.name, dict(c.function.arguments)) for c in part.message.tool_calls or []]
        last = part
    assert calls == [("get_weather", {"city": "Tokyo"}), ("get_time", {"city": "Tokyo"})]
    assert last.done and last.done_reason == "stop"
