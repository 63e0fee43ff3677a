"""Tool calling through the five OpenAI-format plugins, on each API a plugin speaks: OpenAI and Grok on the
Responses API (their default) and on Chat Completions, OpenRouter, Gab AI and OpenAI-compatible servers on
Chat Completions. Each against its own flavour of the local server over real sockets, built through
providers.factory: a reply that asks for one tool, two in parallel, the next request carrying the calls and
their results in the API's own shape, then the final answer; argument text that is not JSON; the tools and
``tool_choice`` as each API writes them. The recorded OpenAI streams (a call, then the answer to its result)
are replayed byte for byte and the second request compared with the one that produced the recording, and the
official ``openai`` client reads the scripted call streams to the same calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from providers import errors
from providers.contract import ChatRequest, Finish, Message, ToolCall, ToolSpec, Usage
from tests.fakes.fixtures import fixture_bytes
from tests.fakes.openai_dialect import DEFAULT_FIXTURE, TOOLCALL_FIXTURE, FakeOpenAI, sse
from tests.fakes.openai_responses import TOOLCALL_FIXTURE as RESPONSES_TOOLCALL
from tests.fakes.openai_responses import TOOLCALL_TURN2_FIXTURE, FakeResponses
from tests.fakes.samples import collect
from tests.plugins.openai_support import FLAVOURS, OPENAI_TEXT, make

WEATHER = ToolSpec(
    "get_weather",
    "The current weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
# The recordings' own tool, as their requests described it.
MULTIPLY = ToolSpec(
    "multiply",
    "Multiply two numbers.",
    {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"], "type": "object"},
)
QUESTION = "What is the weather in Paris and in Tokyo?"
PARIS = ("call_paris01", "get_weather", '{"city":"Paris"}')
TOKYO = ("call_tokyo02", "get_weather", '{"city":"Tokyo"}')


@dataclass(frozen=True)
class Target:
    """One plugin on one of its APIs, and how to script and read its fake server."""

    plugin: str  # a key of openai_support.FLAVOURS
    api: str  # "chat_completions" | "responses"
    model: str

    @property
    def responses(self) -> bool:
        return self.api == "responses"

    def server(self) -> FakeOpenAI:
        flavour = FLAVOURS[self.plugin].fake
        return FakeResponses(flavour) if self.responses else FakeOpenAI(flavour)

    def ask(self, *messages: Message, tools: tuple[ToolSpec, ...] = (WEATHER,), **kwargs: Any) -> ChatRequest:
        options = {"api": self.api} if self.plugin in ("openai", "grok") else {}
        return ChatRequest(self.model, messages or (Message("user", QUESTION),), tools=tools, options=options, **kwargs)

    def calls(self, fake: FakeOpenAI, *calls: tuple[str, str, str], texts: tuple[str, ...] = ()) -> list[bytes]:
        """A scripted stream of a turn that calls ``calls`` (after ``texts``), in this API's shape."""
        if self.responses:
            return fake.scripted(list(texts), function_calls=list(calls))
        return fake.scripted(list(texts), tool_calls=list(calls))

    def sent(self, fake: FakeOpenAI) -> dict[str, Any]:
        """The body of the last request to this API's endpoint, as the server received it."""
        requests = fake.responses_requests if isinstance(fake, FakeResponses) and self.responses else fake.chat_requests
        return requests[-1].json


TARGETS = [
    Target("openai", "responses", "gpt-5.5"),
    Target("openai", "chat_completions", "gpt-4o-mini"),
    Target("grok", "responses", "grok-4.3"),
    Target("grok", "chat_completions", "grok-4.3"),
    Target("openrouter", "chat_completions", "openai/gpt-4o"),
    Target("gab-ai", "chat_completions", "arya"),
    Target("openai-compatible", "chat_completions", "llama3.2"),
]
CHAT_TARGETS = [t for t in TARGETS if not t.responses]
RESPONSES_TARGETS = [t for t in TARGETS if t.responses]


def ids(target: Target) -> str:
    return f"{target.plugin}-{target.api}"


@pytest.fixture(params=TARGETS, ids=ids)
def target(request) -> Target:
    return request.param


@pytest.fixture
def fake(target):
    with target.server() as server:
        yield server


def calls_of(result) -> list[ToolCall]:
    return [e for e in result.events if isinstance(e, ToolCall)]


def turn_of(first, question: str = QUESTION) -> tuple[Message, ...]:
    """The history the host sends after a turn that called tools: the question, that turn (with its calls
    and its state), and the tools' results."""
    return (
        Message("user", question),
        Message("assistant", first.text, provider_state=first.provider_state, tool_calls=first.tool_calls),
    )


def result(call_id: str, content: str, *, error: bool = False) -> Message:
    return Message("tool", content, tool_call_id=call_id, is_error=error, tool_name="get_weather")


# ---- one call, two calls, the next turn ------------------------------------------------------------


async def test_a_reply_asking_for_one_tool_is_one_call_then_finish_tool_calls(target, fake):
    fake.queue(target.calls(fake, PARIS))
    streamed = await collect(make(FLAVOURS[target.plugin], fake).stream(target.ask()))
    assert calls_of(streamed) == [ToolCall("call_paris01", "get_weather", {"city": "Paris"})]
    assert streamed.finish == "tool_calls"
    kinds = [type(e) for e in streamed.events]
    assert kinds.index(ToolCall) < kinds.index(Usage) < kinds.index(Finish)  # the call, then the turn's end
    assert streamed.text == ""


async def test_two_parallel_calls_are_two_tool_calls_in_order(target, fake):
    fake.queue(target.calls(fake, PARIS, TOKYO))
    answer = await make(FLAVOURS[target.plugin], fake).complete(target.ask())
    assert answer.tool_calls == (
        ToolCall("call_paris01", "get_weather", {"city": "Paris"}),
        ToolCall("call_tokyo02", "get_weather", {"city": "Tokyo"}),
    )
    assert answer.finish_reason == "tool_calls"


async def test_the_next_request_carries_the_calls_and_their_results_then_the_answer_arrives(target, fake):
    fake.queue(target.calls(fake, PARIS, TOKYO))
    fake.queue(fake.scripted(["Sunny in Paris", ", rain in Tokyo."]))
    provider = make(FLAVOURS[target.plugin], fake)
    first = await provider.complete(target.ask())
    history = (*turn_of(first), result("call_paris01", "Sunny, 24°C"), result("call_tokyo02", "Rain, 18°C"))
    final = await collect(provider.stream(target.ask(*history)))
    assert (final.text, final.finish, calls_of(final)) == ("Sunny in Paris, rain in Tokyo.", "stop", [])
    sent = target.sent(fake)
    if target.responses:
        assert sent["input"] == [
            {"role": "user", "content": QUESTION},
            {"type": "function_call", "call_id": "call_paris01", "name": "get_weather", "arguments": PARIS[2]},
            {"type": "function_call", "call_id": "call_tokyo02", "name": "get_weather", "arguments": TOKYO[2]},
            {"type": "function_call_output", "call_id": "call_paris01", "output": "Sunny, 24°C"},
            {"type": "function_call_output", "call_id": "call_tokyo02", "output": "Rain, 18°C"},
        ]
        return
    assert sent["messages"] == [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": None,  # a turn of calls alone: null, not ""
            "tool_calls": [
                {"id": "call_paris01", "type": "function", "function": {"name": "get_weather", "arguments": PARIS[2]}},
                {"id": "call_tokyo02", "type": "function", "function": {"name": "get_weather", "arguments": TOKYO[2]}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_paris01", "content": "Sunny, 24°C"},
        {"role": "tool", "tool_call_id": "call_tokyo02", "content": "Rain, 18°C"},
    ]


async def test_text_before_the_calls_goes_back_with_them(target, fake):
    fake.queue(target.calls(fake, PARIS, texts=("Let me look.",)))
    fake.queue(fake.scripted(["Sunny."]))
    provider = make(FLAVOURS[target.plugin], fake)
    first = await provider.complete(target.ask())
    assert (first.text, len(first.tool_calls), first.finish_reason) == ("Let me look.", 1, "tool_calls")
    await collect(provider.stream(target.ask(*turn_of(first), result("call_paris01", "Sunny, 24°C"))))
    sent = target.sent(fake)
    if target.responses:
        assert sent["input"][1:3] == [
            {"role": "assistant", "content": "Let me look."},
            {"type": "function_call", "call_id": "call_paris01", "name": "get_weather", "arguments": PARIS[2]},
        ]
    else:
        assert sent["messages"][1]["content"] == "Let me look."
        assert [c["id"] for c in sent["messages"][1]["tool_calls"]] == ["call_paris01"]


async def test_a_failed_result_tells_the_model_it_failed(target, fake):
    fake.queue(target.calls(fake, PARIS))
    provider = make(FLAVOURS[target.plugin], fake)
    first = await provider.complete(target.ask())
    failed = result("call_paris01", "the weather service timed out", error=True)
    await collect(provider.stream(target.ask(*turn_of(first), failed)))
    sent = target.sent(fake)
    last = sent["input"][-1] if target.responses else sent["messages"][-1]
    said = last["output"] if target.responses else last["content"]
    assert said == "Error: the weather service timed out"


# ---- arguments that are not a JSON object ---------------------------------------------------------


@pytest.mark.parametrize("text", ['{"city": "Par', "[1, 2]", "Paris"])
async def test_arguments_that_are_not_a_json_object_are_a_call_with_invalid_arguments(target, fake, text):
    fake.queue(target.calls(fake, ("call_bad", "get_weather", text), TOKYO))
    fake.queue(fake.scripted(["Sorry."]))
    provider = make(FLAVOURS[target.plugin], fake)
    first = await provider.complete(target.ask())
    assert first.tool_calls == (
        ToolCall("call_bad", "get_weather", {}, invalid_arguments=text),
        ToolCall("call_tokyo02", "get_weather", {"city": "Tokyo"}),  # the other call is unharmed
    )
    assert first.finish_reason == "tool_calls"
    refusal = result("call_bad", "the arguments were not a JSON object", error=True)
    await collect(provider.stream(target.ask(*turn_of(first), refusal, result("call_tokyo02", "Rain"))))
    sent = target.sent(fake)
    echoed = (
        sent["input"][1]["arguments"]
        if target.responses
        else sent["messages"][1]["tool_calls"][0]["function"]["arguments"]
    )
    assert echoed == text  # the model's own text goes back, as it wrote it


async def test_a_call_without_arguments_has_empty_arguments(target, fake):
    fake.queue(target.calls(fake, ("call_now", "clock", "")))
    answer = await make(FLAVOURS[target.plugin], fake).complete(target.ask())
    assert answer.tool_calls == (ToolCall("call_now", "clock", {}),)


# ---- the tools and tool_choice as each API writes them ----------------------------------------------


async def test_no_tools_sends_no_tools_key(target, fake):
    fake.reply(["Hello."])
    await collect(make(FLAVOURS[target.plugin], fake).stream(target.ask(tools=(), tool_choice="required")))
    sent = target.sent(fake)
    assert "tools" not in sent
    assert "tool_choice" not in sent


async def test_tools_go_out_in_the_apis_own_shape(target, fake):
    fake.reply(["Hello."])
    bare = ToolSpec("clock", "")  # no description: none is sent
    await collect(make(FLAVOURS[target.plugin], fake).stream(target.ask(tools=(WEATHER, bare))))
    tools = target.sent(fake)["tools"]
    weather = {"name": "get_weather", "description": WEATHER.description, "parameters": WEATHER.parameters}
    clock = {"name": "clock", "parameters": {"type": "object", "properties": {}}}
    if target.responses:
        strict = {"strict": False} if target.plugin == "openai" else {}  # OpenAI reads no strict as strict
        assert tools == [{"type": "function", **weather, **strict}, {"type": "function", **clock, **strict}]
    else:
        assert tools == [{"type": "function", "function": weather}, {"type": "function", "function": clock}]


CHOICES = {
    "chat_completions": {
        "none": "none",
        "required": "required",
        "get_weather": {"type": "function", "function": {"name": "get_weather"}},
    },
    "responses": {"none": "none", "required": "required", "get_weather": {"type": "function", "name": "get_weather"}},
}


@pytest.mark.parametrize("choice", ["auto", "none", "required", "get_weather"])
async def test_tool_choice_is_mapped_and_auto_is_left_to_the_default(target, fake, choice):
    fake.reply(["Hello."])
    await collect(make(FLAVOURS[target.plugin], fake).stream(target.ask(tool_choice=choice)))
    sent = target.sent(fake)
    if choice == "auto":
        assert "tool_choice" not in sent  # every server's default (and some take no tool_choice at all)
    else:
        assert sent["tool_choice"] == CHOICES[target.api][choice]


async def test_a_tool_choice_naming_no_offered_tool_is_refused_before_any_request(target, fake):
    with pytest.raises(errors.InvalidRequestError) as caught:
        await collect(make(FLAVOURS[target.plugin], fake).stream(target.ask(tool_choice="get_stock_price")))
    assert "get_stock_price" in caught.value.message
    assert fake.requests == []


# ---- the recorded streams ----------------------------------------------------------------------------


def recorded_request(name: str) -> dict[str, Any]:
    return json.loads(fixture_bytes(f"{name}.request.txt").decode().split("\n", 1)[1])


@pytest.mark.parametrize("target", CHAT_TARGETS, ids=ids)
async def test_the_recorded_chat_call_its_second_request_and_answer(target, fake):
    """OpenAI's recorded call to ``multiply`` and its recorded answer, through every Chat Completions
    plugin; the second request says what the recording's second request said."""
    fake.queue(fake.recording(TOOLCALL_FIXTURE))
    fake.queue(fake.recording(DEFAULT_FIXTURE))  # the same cassette's answer, once given 2869461
    provider = make(FLAVOURS[target.plugin], fake)
    question = "What is 1231 * 2331?"
    first = await provider.complete(target.ask(Message("user", question), tools=(MULTIPLY,)))
    assert first.tool_calls == (ToolCall("call_1EYWDzueHEp8OsB8jJSEp7WB", "multiply", {"a": 1231, "b": 2331}),)
    assert first.finish_reason == "tool_calls"
    assert target.sent(fake)["tools"] == recorded_request(TOOLCALL_FIXTURE)["tools"]
    answer = Message("tool", "2869461", tool_call_id="call_1EYWDzueHEp8OsB8jJSEp7WB", tool_name="multiply")
    final = await provider.complete(target.ask(*turn_of(first, question), answer, tools=(MULTIPLY,)))
    assert (final.text, final.finish_reason) == (OPENAI_TEXT, "stop")
    sent, recorded = target.sent(fake)["messages"], recorded_request(DEFAULT_FIXTURE)["messages"]
    assert sent[-1] == recorded[-1]  # the tool message, field for field
    (call,) = sent[1]["tool_calls"]
    (recorded_call,) = recorded[-2]["tool_calls"]
    assert {**call, "function": {}} == {**recorded_call, "function": {}}
    assert call["function"]["name"] == recorded_call["function"]["name"]
    # The model's own argument text goes back (the recording's client had re-spaced it).
    assert json.loads(call["function"]["arguments"]) == json.loads(recorded_call["function"]["arguments"])


@pytest.mark.parametrize("target", RESPONSES_TARGETS, ids=ids)
async def test_the_recorded_responses_call_its_second_request_and_answer(target, fake):
    """gpt-5.5's recorded call (a ``fc_`` item whose ``call_id`` is the call's id) and the recorded answer,
    through both Responses plugins; the second request's input is the recording's own."""
    fake.queue(fake.recording(RESPONSES_TOOLCALL))
    fake.queue(fake.recording(TOOLCALL_TURN2_FIXTURE))
    provider = make(FLAVOURS[target.plugin], fake)
    question = "What is 1231 * 2331? Use the multiply tool."
    first = await collect(provider.stream(target.ask(Message("user", question), tools=(MULTIPLY,))))
    assert calls_of(first) == [ToolCall("call_sVidsfFJ6zlzRpelrPkTPlpd", "multiply", {"a": 1231, "b": 2331})]
    assert first.finish == "tool_calls"
    assert first.usage == Usage(58, 23, cached_input_tokens=0, reasoning_tokens=0)
    recorded_first = recorded_request(RESPONSES_TOOLCALL)
    for tool, recorded_tool in zip(target.sent(fake)["tools"], recorded_first["tools"], strict=True):
        assert {k: v for k, v in tool.items() if k != "strict"} == recorded_tool
    history = (
        Message("user", question),
        Message("assistant", "", tool_calls=tuple(calls_of(first))),
        Message("tool", "2869461", tool_call_id="call_sVidsfFJ6zlzRpelrPkTPlpd", tool_name="multiply"),
    )
    final = await collect(provider.stream(target.ask(*history, tools=(MULTIPLY,))))
    assert (final.text, final.finish) == ("1231 \u00d7 2331 = **2,869,461**", "stop")
    sent, recorded = target.sent(fake)["input"], recorded_request(TOOLCALL_TURN2_FIXTURE)["input"]
    assert [{k: v for k, v in item.items() if k != "arguments"} for item in sent] == [
        {k: v for k, v in item.items() if k != "arguments"} for item in recorded
    ]
    assert json.loads(sent[1]["arguments"]) == json.loads(recorded[1]["arguments"])


# ---- Chat Completions streams as servers bend them ----------------------------------------------------


@pytest.mark.parametrize("target", CHAT_TARGETS, ids=ids)
async def test_interleaved_fragments_of_parallel_calls_are_assembled_by_index(target, fake):
    fake.queue(fake.scripted(tool_calls=[PARIS, TOKYO], piece=2, interleave=True))
    answer = await make(FLAVOURS[target.plugin], fake).complete(target.ask())
    assert [(c.id, c.arguments) for c in answer.tool_calls] == [
        ("call_paris01", {"city": "Paris"}),
        ("call_tokyo02", {"city": "Tokyo"}),
    ]


@pytest.mark.parametrize("target", CHAT_TARGETS, ids=ids)
async def test_a_call_sent_whole_in_one_fragment_is_one_call(target, fake):
    fake.queue(fake.scripted(tool_calls=[PARIS, TOKYO], piece=None))
    answer = await make(FLAVOURS[target.plugin], fake).complete(target.ask())
    assert [c.arguments for c in answer.tool_calls] == [{"city": "Paris"}, {"city": "Tokyo"}]


@pytest.mark.parametrize("target", CHAT_TARGETS, ids=ids)
async def test_fragments_without_an_index_follow_their_id_or_the_call_before(target, fake):
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({"id": "chatcmpl-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    fake.queue(
        [
            chunk({"role": "assistant", "tool_calls": [{"id": "call_a", "function": {"name": "get_weather"}}]}),
            chunk({"tool_calls": [{"function": {"arguments": '{"city":'}}]}),
            chunk({"tool_calls": [{"id": "call_a", "function": {"arguments": '"Oslo"}'}}]}),  # its id repeated
            chunk({"tool_calls": [{"id": "call_b", "function": {"name": "clock", "arguments": "{}"}}]}),
            chunk({}, finish="tool_calls"),
            b"data: [DONE]\n\n",
        ]
    )
    answer = await make(FLAVOURS[target.plugin], fake).complete(target.ask())
    assert answer.tool_calls == (ToolCall("call_a", "get_weather", {"city": "Oslo"}), ToolCall("call_b", "clock"))


@pytest.mark.parametrize("target", CHAT_TARGETS, ids=ids)
async def test_calls_with_a_stop_finish_still_end_the_turn_as_tool_calls(target, fake):
    """Some local servers say ``stop`` after a turn of calls; the calls decide."""
    fake.queue(fake.scripted(tool_calls=[PARIS], finish="stop"))
    answer = await make(FLAVOURS[target.plugin], fake).complete(target.ask())
    assert (len(answer.tool_calls), answer.finish_reason) == (1, "tool_calls")


@pytest.mark.parametrize("target", [t for t in CHAT_TARGETS if t.plugin in ("gab-ai", "openai-compatible")], ids=ids)
async def test_a_lenient_stream_that_ends_without_a_finish_still_hands_on_its_calls(target, fake):
    fake.queue(fake.scripted(tool_calls=[PARIS, TOKYO], finish=None, usage=None, done=False))
    answer = await make(FLAVOURS[target.plugin], fake).complete(target.ask())
    assert [c.id for c in answer.tool_calls] == ["call_paris01", "call_tokyo02"]
    assert answer.finish_reason == "tool_calls"


@pytest.mark.parametrize("target", CHAT_TARGETS, ids=ids)
async def test_a_whole_completion_with_tool_calls_is_read_too(target, fake):
    """A gateway that ignores ``stream: true`` answers with the whole ``chat.completion``."""
    call = {"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    fake.fail_next(200, {"id": "c-1", "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]})
    streamed = await collect(make(FLAVOURS[target.plugin], fake).stream(target.ask()))
    assert calls_of(streamed) == [ToolCall("call_w", "get_weather", {"city": "Rome"})]
    assert streamed.finish == "tool_calls"


@pytest.mark.parametrize("target", CHAT_TARGETS, ids=ids)
async def test_a_call_without_an_id_is_given_one_and_object_arguments_are_serialised(target, fake):
    """Two bends of some local servers: no ``id`` on a call, and its arguments as an object."""
    whole = {"index": 0, "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Bern"}}}
    fake.queue(
        [
            sse({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [whole]}}]}),
            sse({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            b"data: [DONE]\n\n",
        ]
    )
    fake.queue(fake.scripted(["Mild."]))
    provider = make(FLAVOURS[target.plugin], fake)
    first = await provider.complete(target.ask())
    assert first.tool_calls == (ToolCall("call_0", "get_weather", {"city": "Bern"}),)
    await collect(provider.stream(target.ask(*turn_of(first), result("call_0", "12°C"))))
    sent = target.sent(fake)["messages"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == "call_0"  # the result names its call


# ---- the scripted streams, read by the official client ---------------------------------------------


def official(fake: FakeOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test-not-a-real-key", base_url=fake.base_url, max_retries=0)


@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("flavour", ["openai", "xai", "gab", "openrouter", "compatible"])
async def test_the_official_client_assembles_the_scripted_chat_calls_as_the_plugins_do(flavour, interleave):
    """If the fake's tool-call fragments drifted from the real wire format, the SDK would disagree."""
    with FakeOpenAI(flavour) as fake:
        fake.reply([], tool_calls=[PARIS, TOKYO], interleave=interleave)
        tools = [{"type": "function", "function": {"name": WEATHER.name, "parameters": WEATHER.parameters}}]
        async with (
            official(fake) as api,
            api.chat.completions.stream(
                model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], tools=tools
            ) as stream,
        ):
            final = await stream.get_final_completion()
    (choice,) = final.choices
    assert choice.finish_reason == "tool_calls"
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls]
    assert calls == [PARIS, TOKYO]


@pytest.mark.parametrize("flavour", ["openai", "xai"])
async def test_the_official_client_reads_the_scripted_function_calls(flavour):
    with FakeResponses(flavour) as fake:
        fake.reply(["Checking."], function_calls=[PARIS, TOKYO], reasoning=["Two cities."])
        async with official(fake) as api, api.responses.stream(model="gpt-5.5", input=QUESTION) as stream:
            final = await stream.get_final_response()
    kinds = [item.type for item in final.output]
    assert kinds == ["reasoning", "message", "function_call", "function_call"]
    calls = [(i.call_id, i.name, i.arguments) for i in final.output if i.type == "function_call"]
    assert calls == [PARIS, TOKYO]
    assert all(i.id.startswith("fc_") for i in final.output if i.type == "function_call")
