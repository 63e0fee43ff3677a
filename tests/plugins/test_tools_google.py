"""Function calling through the Google Gemini plugin, against the local Generative Language API replaying the
recorded Gemini 3 function call (and chunks assembled in its shape) over real sockets; every next turn is
checked on the JSON the server received."""

from __future__ import annotations

import json

import pytest
from google import genai
from google.genai import types

from providers import errors
from providers.contract import ChatRequest, Message, ToolCall, ToolSpec
from providers.factory import create_llm_provider
from providers.tool_mapping import fallback_call_id
from tests.fakes.fixtures import fixture_bytes
from tests.fakes.gemini import (
    FUNCTION_CALL_MODEL,
    FUNCTION_CALL_RECORDING,
    FUNCTION_CALL_TURN2,
    RECORDED_MODEL,
    FakeGemini,
    recorded_chunks,
    signed_parts,
)
from tests.fakes.samples import FAST_RETRY, collect

KEY = "AIzaSyFake-tools-test-key-000000000001"
MULTIPLY = ToolSpec(
    "multiply",
    "Multiply two numbers.",
    {"properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"], "type": "object"},
)
RESPONSE_ID = "6XJFadi3PJOx-sAPgJ3S6Qs"  # the recording's responseId, which marks the reply's calls without ids
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture
def fake():
    with FakeGemini(api_key=KEY) as server:
        yield server


def provider_for(fake: FakeGemini):
    provider = create_llm_provider("GOOGLE", api_key=KEY, base_url=fake.base_url)
    provider.retry = FAST_RETRY
    return provider


def recorded_request(name: str) -> dict:
    return json.loads(fixture_bytes(f"{name}.request.txt").decode().split("\n", 1)[1])


def ask(model: str = FUNCTION_CALL_MODEL, text: str = "What is 5 times 3?", **kwargs) -> ChatRequest:
    kwargs.setdefault("tools", (MULTIPLY,))
    return ChatRequest(model=model, messages=(Message("user", text),), **kwargs)


def declarations(body: dict) -> list[dict]:
    return body["tools"][0]["functionDeclarations"]


# ---- (a) one call, (b) two in parallel ----------------------------------------------------------


async def test_the_recorded_call_is_one_tool_call_with_its_args_object_then_tool_calls(fake):
    result = await collect(provider_for(fake).stream(ask()))

    calls = [e for e in result.events if isinstance(e, ToolCall)]
    # no id from the model: ours, from the call's place and the reply's responseId
    assert calls == [ToolCall(fallback_call_id(0, "multiply", RESPONSE_ID), "multiply", {"y": 3, "x": 5})]
    assert calls[0].id.startswith("call_") and calls[0].id.endswith("_0_multiply")
    assert result.finish == "tool_calls"
    body = fake.requests[-1].json
    assert body["tools"] == recorded_request(FUNCTION_CALL_RECORDING)["tools"]
    assert body["contents"] == recorded_request(FUNCTION_CALL_RECORDING)["contents"]
    assert "toolConfig" not in body  # AUTO is the API's default


@pytest.mark.parametrize(
    ("with_ids", "ids"),
    [(False, [fallback_call_id(i, "get_weather", RESPONSE_ID) for i in (0, 1)]), (True, ["c9bjmk00", "c9bjmk01"])],
)
async def test_two_parallel_calls_are_two_tool_calls(fake, with_ids, ids):
    fake.reply, fake.call_ids = "parallel_calls", with_ids
    result = await provider_for(fake).complete(ask(RECORDED_MODEL, "Weather in Paris and Oslo?", tools=(WEATHER,)))

    assert result.tool_calls == (
        ToolCall(ids[0], "get_weather", {"city": "Paris"}),
        ToolCall(ids[1], "get_weather", {"city": "Oslo"}),
    )
    assert result.finish_reason == "tool_calls"


# ---- (c) the next turn, (d) the final answer -----------------------------------------------------


async def test_the_next_turn_carries_the_call_part_with_its_signature_then_the_function_response(fake):
    provider = provider_for(fake)
    first = await provider.complete(ask())
    (call,) = first.tool_calls
    history = (
        Message("user", "What is 5 times 3?"),
        Message("assistant", first.text, provider_state=first.provider_state, tool_calls=first.tool_calls),
        Message("tool", "15", tool_call_id=call.id, tool_name=call.name),
    )
    final = await collect(provider.stream(ChatRequest(model=FUNCTION_CALL_MODEL, messages=history, tools=(MULTIPLY,))))

    model_turn, results = fake.requests[-1].json["contents"][1:]
    recorded_part = signed_parts(recorded_chunks(FUNCTION_CALL_RECORDING))[0]
    assert model_turn == {"role": "model", "parts": [recorded_part]}  # as received, signature untouched
    assert recorded_part["thoughtSignature"].encode() in fake.requests[-1].body
    recorded = recorded_request(FUNCTION_CALL_TURN2)["contents"]
    assert results == {"role": "user", "parts": [{"functionResponse": recorded[2]["parts"][0]["function_response"]}]}
    assert results["parts"][0]["functionResponse"] == {"name": "multiply", "response": {"output": "15"}}
    assert (final.text, final.finish) == ("5 times 3 is 15.", "stop")


async def test_parallel_results_go_back_in_one_user_turn_in_order_with_the_ids_gemini_gave(fake):
    fake.reply, fake.call_ids = "parallel_calls", True
    provider = provider_for(fake)
    first = await provider.complete(ask(RECORDED_MODEL, "Weather in Paris and Oslo?", tools=(WEATHER,)))
    paris, oslo = first.tool_calls
    history = (
        Message("user", "Weather in Paris and Oslo?"),
        Message("assistant", "", provider_state=first.provider_state, tool_calls=first.tool_calls),
        Message("tool", "sunny", tool_call_id=paris.id, tool_name="get_weather"),
        Message("tool", "station offline", tool_call_id=oslo.id, is_error=True),  # the name found from its call
    )
    fake.reply = "recorded"
    final = await collect(provider.stream(ChatRequest(model=RECORDED_MODEL, messages=history, tools=(WEATHER,))))

    model_turn, results = fake.requests[-1].json["contents"][1:]
    parts = model_turn["parts"]
    assert [p["functionCall"] for p in parts] == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "c9bjmk00"},
        {"name": "get_weather", "args": {"city": "Oslo"}, "id": "c9bjmk01"},
    ]
    assert ["thoughtSignature" in p for p in parts] == [True, False]  # only the first, as it came
    assert results["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}, "id": "c9bjmk00"}},
        {"functionResponse": {"name": "get_weather", "response": {"error": "station offline"}, "id": "c9bjmk01"}},
    ]
    assert (final.text, final.finish) == ("Scoop", "stop")


async def test_calls_gemini_sent_without_ids_are_answered_without_ids(fake):
    fake.reply = "parallel_calls"
    provider = provider_for(fake)
    first = await provider.complete(ask(RECORDED_MODEL, "Weather?", tools=(WEATHER,)))
    history = (
        Message("user", "Weather?"),
        Message("assistant", "", provider_state=first.provider_state, tool_calls=first.tool_calls),
        *(Message("tool", "ok", tool_call_id=c.id, tool_name=c.name) for c in first.tool_calls),
    )
    fake.reply = "recorded"
    await collect(provider.stream(ChatRequest(model=RECORDED_MODEL, messages=history, tools=(WEATHER,))))

    responses = fake.requests[-1].json["contents"][2]["parts"]
    assert [part["functionResponse"] for part in responses] == [
        {"name": "get_weather", "response": {"output": "ok"}}
    ] * 2


async def test_calls_without_their_state_are_rebuilt_with_the_documented_stand_in_signature(fake):
    history = (
        Message("user", "What is 5 times 3?"),
        Message("assistant", "Let me work it out.", tool_calls=(ToolCall("toolu_x", "multiply", {"x": 5, "y": 3}),)),
        Message("tool", "15", tool_call_id="toolu_x", tool_name="multiply"),
    )
    result = await collect(
        provider_for(fake).stream(ChatRequest(model=FUNCTION_CALL_MODEL, messages=history, tools=(MULTIPLY,)))
    )

    model_turn = fake.requests[-1].json["contents"][1]  # the fake, like Gemini 3, refuses a call part unsigned
    assert model_turn["parts"] == [
        {"text": "Let me work it out."},
        {
            "functionCall": {"name": "multiply", "args": {"x": 5, "y": 3}},
            "thoughtSignature": "skip_thought_signature_validator",
        },
    ]
    assert fake.requests[-1].json["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "multiply",
        "response": {"output": "15"},
    }  # an id Gemini did not give is not sent
    assert result.finish == "stop"


# ---- what is sent: schemas, no tools, toolConfig --------------------------------------------------


async def test_a_json_schema_is_cut_to_the_openapi_subset_gemini_takes(fake):
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "city": {"type": ["string", "null"], "description": "City name"},
            "units": {"enum": [1, 2], "type": "integer"},
            "place": {"$ref": "#/$defs/Place"},
            "tags": {"type": "array", "items": {"type": "string", "const": "x"}},
        },
        "required": ["city", "missing"],
        "$defs": {
            "Place": {"type": "object", "properties": {"lat": {"type": "number"}}, "additionalProperties": False}
        },
    }
    await collect(provider_for(fake).stream(ask(RECORDED_MODEL, tools=(ToolSpec("where", "Where", schema),))))

    assert declarations(fake.requests[-1].json) == [
        {
            "name": "where",
            "description": "Where",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "nullable": True, "description": "City name"},
                    "units": {"type": "integer", "description": "One of: 1, 2."},
                    "place": {"type": "object", "properties": {"lat": {"type": "number"}}},
                    "tags": {"type": "array", "items": {"type": "string", "enum": ["x"]}},
                },
                "required": ["city"],
            },
        }
    ]


async def test_a_tool_without_parameters_is_declared_without_them(fake):
    tool = ToolSpec("fixed_version", "Return a fixed test version string", {"type": "object", "properties": {}})
    result = await collect(provider_for(fake).stream(ask(RECORDED_MODEL, tools=(tool,))))
    assert declarations(fake.requests[-1].json) == [{"name": "fixed_version", "description": tool.description}]
    assert result.finish == "stop"


async def test_no_tools_send_no_tools_key(fake):
    await collect(provider_for(fake).stream(ask(RECORDED_MODEL, tools=())))
    body = fake.requests[-1].json
    assert "tools" not in body and "toolConfig" not in body


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", None),
        ("none", {"functionCallingConfig": {"mode": "NONE"}}),
        ("required", {"functionCallingConfig": {"mode": "ANY"}}),
        ("multiply", {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["multiply"]}}),
    ],
)
async def test_tool_choice_maps_to_the_function_calling_mode(fake, choice, sent):
    await collect(provider_for(fake).stream(ask(RECORDED_MODEL, tool_choice=choice)))
    assert fake.requests[-1].json.get("toolConfig") == sent


async def test_a_tool_choice_naming_a_tool_not_offered_is_refused_before_any_request(fake):
    with pytest.raises(errors.InvalidRequestError, match="'divide'"):
        await collect(provider_for(fake).stream(ask(tool_choice="divide")))
    assert fake.requests == []


async def test_calls_keep_their_signature_when_the_turns_text_no_longer_fits_its_state(fake):
    fake.reply = "parallel_calls"
    provider = provider_for(fake)
    first = await provider.complete(ask(RECORDED_MODEL, "Weather?", tools=(WEATHER,)))
    # the calls came after "Checking. " (offset 10); the host hands the turn back trimmed to "Checking."
    state = {"parts": [{"offset": 10, "part": entry["part"]} for entry in first.provider_state["parts"]]}
    history = (
        Message("user", "Weather?"),
        Message("assistant", "Checking.", provider_state=state, tool_calls=first.tool_calls),
        *(Message("tool", "ok", tool_call_id=c.id, tool_name=c.name) for c in first.tool_calls),
    )
    fake.reply = "recorded"
    await collect(provider.stream(ChatRequest(model=RECORDED_MODEL, messages=history, tools=(WEATHER,))))

    parts = fake.requests[-1].json["contents"][1]["parts"]
    assert parts == [{"text": "Checking."}, *(entry["part"] for entry in first.provider_state["parts"])]
    assert parts[1]["thoughtSignature"] == signed_parts(recorded_chunks(FUNCTION_CALL_RECORDING))[0]["thoughtSignature"]


async def test_the_official_client_reads_the_assembled_parallel_calls_alike(fake):
    """The assembled chunks are the API's own shape: google-genai reads the same calls and signature."""
    fake.reply, fake.call_ids = "parallel_calls", True
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=fake.origin))
    calls, signatures = [], []
    stream = await client.aio.models.generate_content_stream(model=RECORDED_MODEL, contents="Weather?")
    async for chunk in stream:
        for part in chunk.candidates[0].content.parts or []:
            if part.function_call:
                calls.append((part.function_call.id, part.function_call.name, part.function_call.args))
                signatures.append(part.thought_signature is not None)
    assert calls == [("c9bjmk00", "get_weather", {"city": "Paris"}), ("c9bjmk01", "get_weather", {"city": "Oslo"})]
    assert signatures == [True, False]


def test_ids_made_for_calls_differ_between_replies_and_stay_the_same_for_one():
    """A tool loop's next reply starts at call 0 again: its marks differ, so its ids do (the chat page finds a
    call's panel by its id); the same reply always gives the same id."""
    first, again, next_reply = (fallback_call_id(0, "multiply", mark) for mark in ("resp-a", "resp-a", "resp-b"))
    assert first == again != next_reply
    assert fallback_call_id(0, "multiply") == "call_0_multiply"  # a reply without a mark
