"""The OpenAI plugin on its default API, the Responses API (``POST /responses``): the recorded reasoning
stream, the reasoning items that go back next turn (before the calls they led to, when a turn called tools),
effort, usage, errors inside the stream, and the Chat Completions opt-in. Real sockets: the plugin is built
through providers.factory against FakeResponses.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from providers import errors
from providers.contract import (
    Attachment,
    ChatRequest,
    Message,
    ProviderState,
    ReasoningOptions,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from providers.factory import create_llm_provider
from tests.fakes.fixtures import fixture_bytes
from tests.fakes.openai_dialect import split_events
from tests.fakes.openai_responses import REASONING_TOOLCALL_FIXTURE, FakeResponses
from tests.fakes.samples import PDF_BYTES, collect, png_bytes

KEY = "sk-proj-Zx9secretvalue-for-tests-0001"
QUESTION = "How do I cross the street?"  # the recording's own request


def recorded(name: str = "openai_responses_stream_reasoning_summary.sse") -> dict[str, Any]:
    """The ``response`` object of the recording's ``response.completed`` event."""
    for line in fixture_bytes(name).decode().splitlines():
        if line.startswith("data: ") and '"type":"response.completed"' in line:
            return json.loads(line[6:])["response"]
    raise AssertionError("no response.completed in the recording")


RECORDED = recorded()
RECORDED_REASONING = [item for item in RECORDED["output"] if item["type"] == "reasoning"]
RECORDED_TEXT = next(i for i in RECORDED["output"] if i["type"] == "message")["content"][0]["text"]
RECORDED_SUMMARY = "\n\n".join(part["text"] for part in RECORDED_REASONING[0]["summary"])


@pytest.fixture
def fake():
    with FakeResponses("openai") as server:
        yield server


def make(fake: FakeResponses, key: str | None = KEY):
    return create_llm_provider("OPENAI", api_key=key, base_url=fake.base_url)


def ask(model: str = "o3-mini", *messages: Message, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=messages or (Message("user", QUESTION),), **kwargs)


# ---- the recorded stream --------------------------------------------------------------------------


async def test_the_recorded_stream_yields_reasoning_then_text_then_state_usage_and_finish(fake):
    result = await collect(make(fake).stream(ask(reasoning=ReasoningOptions(effort="high"))))
    kinds = [type(e).__name__ for e in result.events]
    first_text = kinds.index("TextDelta")
    assert kinds[0] == "ReasoningDelta"
    assert "ReasoningDelta" not in kinds[first_text:]  # the summary came first, then the answer
    assert len([e for e in result.events if isinstance(e, TextDelta)]) == 271  # as they arrived
    assert result.reasoning == RECORDED_SUMMARY  # paragraphs separated by a blank line
    assert result.text == RECORDED_TEXT
    assert result.usage == Usage(
        input_tokens=13, output_tokens=1680, cached_input_tokens=0, reasoning_tokens=1408, cache_write_tokens=None
    )
    assert kinds[-3:] == ["ProviderState", "Usage", "Finish"]
    assert result.finish == "stop"


async def test_the_request_is_a_stateless_responses_request(fake):
    request = ask(
        "o3-mini",
        Message("system", "Be careful."),
        Message("user", QUESTION),
        reasoning=ReasoningOptions(effort="high"),
        max_tokens=500,
    )
    await collect(make(fake).stream(request))
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/responses")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": "o3-mini",
        "instructions": "Be careful.",
        "input": [{"role": "user", "content": QUESTION}],
        "stream": True,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "high", "summary": "auto"},
        "max_output_tokens": 500,
    }


async def test_the_request_says_what_the_recorded_one_said(fake):
    """The recording's own request (o3-mini, effort high, encrypted reasoning included), field by field; qtap
    asks for the ``auto`` summary where the recording asked for ``detailed``, and stores nothing."""
    recorded_request = json.loads(
        fixture_bytes("openai_responses_stream_reasoning_summary.sse.request.txt").decode().split("\n", 1)[1]
    )
    await collect(make(fake).stream(ask("o3-mini", reasoning=ReasoningOptions(effort="high"))))
    sent = fake.responses_requests[-1].json
    for key in ("model", "input", "include", "stream"):
        assert sent[key] == recorded_request[key], key
    assert sent["reasoning"]["effort"] == recorded_request["reasoning"]["effort"]
    assert sent["store"] is False


@pytest.mark.parametrize(
    ("model", "reasoning", "sent"),
    [
        ("gpt-5.5", ReasoningOptions(effort="xhigh"), {"effort": "xhigh", "summary": "auto"}),
        ("gpt-5.4", ReasoningOptions(effort="none"), {"effort": "none", "summary": "auto"}),
        ("gpt-5-mini", ReasoningOptions(effort="minimal", summary=False), {"effort": "minimal"}),
        ("o4-mini", None, {"summary": "auto"}),  # the provider's effort, a summary to show
    ],
)
async def test_an_accepted_effort_is_sent_as_the_reasoning_knob(fake, model, reasoning, sent):
    await collect(make(fake).stream(ask(model, reasoning=reasoning)))
    assert fake.responses_requests[-1].json["reasoning"] == sent


async def test_a_model_without_reasoning_gets_no_reasoning_knob_and_its_sampling_parameters(fake):
    fake.reply(["Hi"])
    await collect(make(fake).stream(ask("gpt-4o", temperature=0.2, top_p=0.9)))
    body = fake.responses_requests[-1].json
    assert "reasoning" not in body
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    fake.reply(["Hi"])
    await collect(make(fake).stream(ask("gpt-4o")))
    assert not {"temperature", "top_p", "max_output_tokens"} & set(fake.responses_requests[-1].json)


@pytest.mark.parametrize(
    ("model", "reasoning", "words"),
    [
        ("o3-mini", ReasoningOptions(effort="xhigh"), ["'o3-mini'", "low, medium, high", "'xhigh'"]),
        ("gpt-5-mini", ReasoningOptions(effort="none"), ["'gpt-5-mini'", "minimal, low, medium, high"]),
        ("gpt-4o", ReasoningOptions(effort="low"), ["'gpt-4o'", "takes no reasoning effort"]),
        ("gpt-5.5", ReasoningOptions(budget_tokens=2048), ["'gpt-5.5'", "no thinking budget", "xhigh"]),
    ],
)
async def test_an_effort_the_model_cannot_take_is_refused_before_any_request(fake, model, reasoning, words):
    with pytest.raises(errors.InvalidRequestError) as refused:
        await collect(make(fake).stream(ask(model, reasoning=reasoning)))
    assert all(word in refused.value.message for word in words), refused.value.message
    assert fake.requests == []


async def test_stop_sequences_are_refused_before_any_request(fake):
    with pytest.raises(errors.InvalidRequestError, match=r"stop sequences.*chat_completions"):
        await collect(make(fake).stream(ask("gpt-4o", stop=("END",))))
    assert fake.requests == []


# ---- the next turn --------------------------------------------------------------------------------


async def test_the_next_turn_sends_the_reasoning_items_back_as_received(fake):
    provider = make(fake)
    first = await provider.complete(ask(reasoning=ReasoningOptions(effort="high")))
    assert first.provider_state is not None
    json.dumps(first.provider_state)  # JSON-serialisable, as the host stores it
    history = (
        Message("user", QUESTION),
        Message("assistant", first.text, provider_state=first.provider_state),
        Message("user", "And at night?"),
    )
    await collect(provider.stream(ask("o3-mini", *history, reasoning=ReasoningOptions(effort="high"))))
    sent = fake.responses_requests[-1].json["input"]
    assert sent == [
        {"role": "user", "content": QUESTION},
        *RECORDED_REASONING,
        {"role": "assistant", "content": RECORDED_TEXT},
        {"role": "user", "content": "And at night?"},
    ]
    # byte for byte: the encrypted reasoning is the recording's own string
    assert sent[1]["encrypted_content"] == RECORDED_REASONING[0]["encrypted_content"]
    assert sent[1]["encrypted_content"] in fixture_bytes("openai_responses_stream_reasoning_summary.sse").decode()


async def test_reasoning_items_are_not_sent_to_another_model(fake):
    provider = make(fake)
    first = await provider.complete(ask(reasoning=ReasoningOptions(effort="high")))
    history = (
        Message("user", QUESTION),
        Message("assistant", first.text, provider_state=first.provider_state),
        Message("user", "Thanks"),
    )
    fake.reply(["Welcome"])
    await collect(provider.stream(ask("gpt-4o", *history)))
    # Encrypted reasoning decrypts only for the model that wrote it: another model would refuse the request.
    assert [item.get("role") for item in fake.responses_requests[-1].json["input"]] == ["user", "assistant", "user"]


async def test_a_stream_without_reasoning_items_carries_no_state(fake):
    fake.reply(["Hello", "."])
    result = await collect(make(fake).stream(ask("gpt-4o")))
    assert result.text == "Hello."
    assert not [e for e in result.events if isinstance(e, ProviderState)]


# ---- attachments ----------------------------------------------------------------------------------


async def test_images_and_pdfs_go_as_input_parts(fake):
    png = png_bytes()
    request = ask(
        "gpt-4o",
        Message(
            "user",
            "What is in these?",
            (Attachment("cat.png", "image/png", png), Attachment("report.pdf", "application/pdf", PDF_BYTES)),
        ),
    )
    fake.reply(["A cat."])
    await collect(make(fake).stream(request))
    assert fake.responses_requests[-1].json["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in these?"},
                {"type": "input_image", "image_url": "data:image/png;base64," + base64.b64encode(png).decode()},
                {
                    "type": "input_file",
                    "filename": "report.pdf",
                    "file_data": "data:application/pdf;base64," + base64.b64encode(PDF_BYTES).decode(),
                },
            ],
        }
    ]


# ---- the stream's own endings and errors ----------------------------------------------------------


async def test_usage_reads_cached_and_cache_write_tokens(fake):
    fake.reply(["ok"], usage=(4020, 4), cached=4012, reasoning_tokens=0)
    fake.events[-1]["response"]["usage"]["input_tokens_details"]["cache_write_tokens"] = 8
    result = await collect(make(fake).stream(ask("gpt-4o")))
    assert result.usage == Usage(4020, 4, cached_input_tokens=4012, cache_write_tokens=8, reasoning_tokens=0)


@pytest.mark.parametrize(("reason", "finish"), [("max_output_tokens", "length"), ("content_filter", "content_filter")])
async def test_an_incomplete_response_keeps_its_text_and_says_why(fake, reason, finish):
    fake.reply(["Part"], status="incomplete", incomplete=reason)
    result = await collect(make(fake).stream(ask("gpt-4o")))
    assert (result.text, result.finish) == ("Part", finish)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": "rate_limit_exceeded", "message": "Rate limit reached"}, errors.RateLimitError),
        ({"code": "server_error", "message": "The server had an error"}, errors.ProviderUnavailableError),
        ({"code": "invalid_prompt", "message": "Invalid prompt"}, errors.InvalidRequestError),
    ],
)
async def test_a_failed_response_is_the_error_it_names(fake, error, expected):
    fake.reply(["Par", "tial"])
    fake.events[-1] = {"type": "response.failed", "response": {"status": "failed", "error": error, "output": []}}
    with pytest.raises(expected) as caught:
        await collect(make(fake).stream(ask("gpt-4o")))
    assert caught.value.message == error["message"]
    assert caught.value.status is None  # the HTTP status was 200


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "error", "code": "rate_limit_exceeded", "message": "Too Many Requests", "param": None},
        {
            "type": "error",
            "error": {"type": "too_many_requests", "code": "rate_limit_exceeded", "message": "Too Many Requests"},
        },
    ],
    ids=["documented", "nested"],
)
async def test_an_error_event_of_either_shape_is_raised(fake, payload):
    fake.reply(["x"])
    fake.events[2:] = [payload]
    with pytest.raises(errors.RateLimitError, match="Too Many Requests"):
        await collect(make(fake).stream(ask("gpt-4o")))
    assert len(fake.requests) == 1  # never retried after the first byte


async def test_unknown_events_and_fields_are_ignored(fake):
    fake.reply(["Hel", "lo"])
    fake.events.insert(2, {"type": "response.mcp_call.in_progress", "item_id": "mcp_1", "output_index": 0})
    fake.events.insert(3, {"type": "response.output_text.annotation.added", "annotation": {"type": "url"}})
    result = await collect(make(fake).stream(ask("gpt-4o")))
    assert result.text == "Hello"


async def test_a_stream_that_ends_before_a_terminal_event_is_a_protocol_error(fake):
    fake.reply(["cut"])
    fake.events.pop()
    with pytest.raises(errors.ProtocolError, match="ended before"):
        await collect(make(fake).stream(ask("gpt-4o")))


async def test_a_dropped_connection_is_a_protocol_error(fake):
    fake.drop_after = 20
    with pytest.raises(errors.ProtocolError, match="closed mid-stream"):
        await collect(make(fake).stream(ask()))


@pytest.mark.parametrize("size", [7, 501])
async def test_the_recording_split_at_any_byte_parses_the_same(fake, size):
    raw = fixture_bytes("openai_responses_stream_reasoning_summary.sse")
    fake.chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    result = await collect(make(fake).stream(ask()))
    assert (result.text, result.reasoning) == (RECORDED_TEXT, RECORDED_SUMMARY)


async def test_a_wrong_key_is_an_authentication_error(fake):
    fake.api_key = "the-right-key"
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(make(fake).stream(ask()))
    assert caught.value.status == 401
    assert len(fake.requests) == 1


# ---- which API ------------------------------------------------------------------------------------


async def test_the_responses_api_is_the_default_and_chat_completions_the_opt_in(fake):
    provider = make(fake)
    await collect(provider.stream(ask("gpt-4o")))
    await collect(provider.stream(ask("gpt-4o", options={"api": "chat_completions"})))
    await collect(provider.stream(ask("gpt-4o", options={"api": "responses"})))
    assert [r.path for r in fake.requests] == ["/v1/responses", "/v1/chat/completions", "/v1/responses"]
    assert provider.config.apis == ("responses", "chat_completions")


async def test_the_recording_is_replayed_byte_for_byte(fake):
    import httpx

    async with httpx.AsyncClient() as raw:
        answer = await raw.post(fake.base_url + "/responses", json={"model": "o3-mini", "stream": True})
    assert answer.content == fixture_bytes("openai_responses_stream_reasoning_summary.sse")
    assert len(split_events(answer.content)) == 676


async def test_raw_reasoning_text_is_reasoning_too(fake):
    fake.reply(["4"])
    raw = {"type": "response.reasoning_text.delta", "item_id": "rs_1", "output_index": 0, "content_index": 0}
    fake.events[2:2] = [{**raw, "delta": "Two and two"}, {**raw, "delta": " make four."}]
    result = await collect(make(fake).stream(ask("gpt-4o")))
    assert (result.reasoning, result.text) == ("Two and two make four.", "4")


async def test_a_refusal_is_shown_as_the_reply_and_finishes_as_content_filter(fake):
    fake.reply([])
    where = {"item_id": "msg_fake0001", "output_index": 0, "content_index": 0}
    fake.events[3:3] = [
        {"type": "response.refusal.delta", **where, "delta": "I can't help"},
        {"type": "response.refusal.delta", **where, "delta": " with that."},
        {"type": "response.refusal.done", **where, "refusal": "I can't help with that."},
    ]
    result = await collect(make(fake).stream(ask("gpt-4o")))
    assert (result.text, result.finish) == ("I can't help with that.", "content_filter")


async def test_on_chat_completions_the_effort_goes_as_reasoning_effort(fake):
    chat = {"api": "chat_completions"}
    await collect(make(fake).stream(ask("o3-mini", reasoning=ReasoningOptions(effort="low"), options=chat)))
    body = fake.chat_requests[-1].json
    assert body["reasoning_effort"] == "low"
    assert "reasoning" not in body


async def test_an_api_the_plugin_does_not_speak_is_refused_before_any_request(fake):
    with pytest.raises(errors.InvalidRequestError, match="'graphql'"):
        await collect(make(fake).stream(ask("gpt-4o", options={"api": "graphql"})))
    assert fake.requests == []


async def test_consecutive_responses_streams_reuse_one_pooled_connection(fake):
    provider = make(fake)
    for _ in range(3):
        fake.reply(["Hi"])
        await collect(provider.stream(ask("gpt-4o")))
    assert len(fake.clients) == 3
    assert len(set(fake.clients)) == 1  # the body was read to its end, so no new handshake


# ---- tool calls: the reasoning that led to a call goes back before it --------------------------------


def recorded_tools_request() -> dict[str, Any]:
    return json.loads(fixture_bytes(REASONING_TOOLCALL_FIXTURE + ".request.txt").decode().split("\n", 1)[1])


async def test_the_recorded_reasoning_then_call_hands_on_the_call_and_keeps_the_reasoning_item():
    """gpt-5-mini's recorded turn: a reasoning item, then a call (its item ``fc_…``, its ``call_id`` the id)."""
    output = recorded(REASONING_TOOLCALL_FIXTURE)["output"]
    (reasoning_item,) = [item for item in output if item["type"] == "reasoning"]
    with FakeResponses("openai", fixture=REASONING_TOOLCALL_FIXTURE) as fake:
        tool = recorded_tools_request()["tools"][0]
        spec = ToolSpec(tool["name"], tool["description"], tool["parameters"])
        provider = make(fake)
        first = await collect(
            provider.stream(ask("gpt-5-mini", Message("user", "Call simple_tool passing 5"), tools=(spec,)))
        )
        assert [e for e in first.events if isinstance(e, ToolCall)] == [
            ToolCall("call_sNntVegw8ViC8Zc4EIjqEKbo", "simple_tool", {"number": "5"})
        ]
        assert first.finish == "tool_calls"
        assert fake.responses_requests[-1].json["tools"] == recorded_tools_request()["tools"]  # strict: false too
        state = next(e.value for e in first.events if isinstance(e, ProviderState))
        assert state == {"model": "gpt-5-mini", "items": [reasoning_item]}
        fake.reply(["Done: 5."])
        turn = Message(
            "assistant",
            "",
            provider_state=state,
            tool_calls=(ToolCall("call_sNntVegw8ViC8Zc4EIjqEKbo", "simple_tool", {"number": "5"}),),
        )
        history = (
            Message("user", "Call simple_tool passing 5"),
            turn,
            Message("tool", "ok", tool_call_id="call_sNntVegw8ViC8Zc4EIjqEKbo"),
        )
        final = await collect(provider.stream(ask("gpt-5-mini", *history, tools=(spec,))))
    assert final.text == "Done: 5."
    assert fake.responses_requests[-1].json["input"] == [
        {"role": "user", "content": "Call simple_tool passing 5"},
        reasoning_item,  # as received, right before the call it led to
        {
            "type": "function_call",
            "call_id": "call_sNntVegw8ViC8Zc4EIjqEKbo",
            "name": "simple_tool",
            "arguments": '{"number":"5"}',
        },
        {"type": "function_call_output", "call_id": "call_sNntVegw8ViC8Zc4EIjqEKbo", "output": "ok"},
    ]


WEATHER = ToolSpec("get_weather", "The weather in a city.", {"type": "object", "properties": {"city": {}}})


async def test_encrypted_reasoning_of_a_turn_of_calls_goes_back_in_its_place_and_only_to_its_model(fake):
    calls = [("call_a", "get_weather", '{"city":"Oslo"}'), ("call_b", "get_weather", '{"city":"Rome"}')]
    fake.queue(fake.scripted(reasoning=["**Plan**\n\nLook both up."], function_calls=calls, encrypted="gAAAA-enc=="))
    provider = make(fake)
    first = await provider.complete(ask("gpt-5.5", tools=(WEATHER,)))
    assert [c.id for c in first.tool_calls] == ["call_a", "call_b"]
    assert first.reasoning == "**Plan**\n\nLook both up."
    turn = Message("assistant", first.text, provider_state=first.provider_state, tool_calls=first.tool_calls)
    results = (Message("tool", "Snow", tool_call_id="call_a"), Message("tool", "Sun", tool_call_id="call_b"))
    history = (Message("user", QUESTION), turn, *results)
    item = {
        "id": "rs_fake0001",
        "type": "reasoning",
        "encrypted_content": "gAAAA-enc==",
        "summary": [{"type": "summary_text", "text": "**Plan**\n\nLook both up."}],
    }
    calls_and_results = [
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "Snow"},
        {"type": "function_call_output", "call_id": "call_b", "output": "Sun"},
    ]
    for model, expected in (("gpt-5.5", [item, *calls_and_results]), ("gpt-5.4", calls_and_results)):
        fake.reply(["Snow in Oslo, sun in Rome."])
        await collect(provider.stream(ask(model, *history, tools=(WEATHER,))))
        assert fake.responses_requests[-1].json["input"] == [{"role": "user", "content": QUESTION}, *expected], model


async def test_calls_found_only_in_the_completed_output_are_still_handed_on_once(fake):
    call = {
        "id": "fc_1",
        "type": "function_call",
        "status": "completed",
        "arguments": '{"city":"Oslo"}',
        "call_id": "call_late",
        "name": "get_weather",
    }
    fake.events = [
        {"type": "response.created", "response": {"status": "in_progress", "output": []}},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**call, "arguments": "", "status": "in_progress"},
        },
        {"type": "response.completed", "response": {"status": "completed", "output": [call], "usage": None}},
    ]
    result = await collect(make(fake).stream(ask("gpt-5.5", tools=(WEATHER,))))
    assert [e for e in result.events if isinstance(e, ToolCall)] == [
        ToolCall("call_late", "get_weather", {"city": "Oslo"})
    ]
    assert result.finish == "tool_calls"


async def test_a_call_whose_done_item_lacks_arguments_takes_them_from_the_stream(fake):
    item = {"id": "fc_2", "type": "function_call", "call_id": "call_s", "name": "get_weather"}
    where = {"item_id": "fc_2", "output_index": 0}
    fake.events = [
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "arguments": ""}},
        {"type": "response.function_call_arguments.delta", **where, "delta": '{"city":'},
        {"type": "response.function_call_arguments.delta", **where, "delta": '"Lim'},
        {"type": "response.function_call_arguments.done", **where, "arguments": '{"city":"Lima"}'},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": {"status": "completed", "output": [item], "usage": None}},
    ]
    result = await collect(make(fake).stream(ask("gpt-5.5", tools=(WEATHER,))))
    # ``.done``'s whole string wins over the pieces (here they stopped short of it)
    assert [e for e in result.events if isinstance(e, ToolCall)] == [
        ToolCall("call_s", "get_weather", {"city": "Lima"})
    ]


async def test_an_interleaved_turn_goes_back_in_its_own_order(fake):
    """Reasoning, a preamble, more reasoning, a call: each reasoning item goes back right before the item it
    led to (the API refuses a reasoning item without its following item)."""
    first_thought = {"id": "rs_1", "type": "reasoning", "encrypted_content": "gAAA-1", "summary": []}
    preamble = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Checking the weather.", "annotations": []}],
    }
    second_thought = {"id": "rs_2", "type": "reasoning", "encrypted_content": "gAAA-2", "summary": []}
    call = {
        "id": "fc_1",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_i",
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    output = [first_thought, preamble, second_thought, call]
    fake.events = [
        *({"type": "response.output_item.done", "output_index": n, "item": item} for n, item in enumerate(output)),
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "delta": "Checking the weather."},
        {"type": "response.completed", "response": {"status": "completed", "output": output, "usage": None}},
    ]
    provider = make(fake)
    first = await provider.complete(ask("gpt-5.5", tools=(WEATHER,)))
    assert first.tool_calls == (ToolCall("call_i", "get_weather", {"city": "Oslo"}),)
    json.dumps(first.provider_state)
    turn = Message("assistant", first.text, provider_state=first.provider_state, tool_calls=first.tool_calls)
    fake.reply(["Cold."])
    await collect(
        provider.stream(ask("gpt-5.5", Message("user", QUESTION), turn, Message("tool", "-3", tool_call_id="call_i")))
    )
    assert fake.responses_requests[-1].json["input"] == [
        {"role": "user", "content": QUESTION},
        first_thought,
        {"role": "assistant", "content": "Checking the weather."},
        second_thought,
        {"type": "function_call", "call_id": "call_i", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_i", "output": "-3"},
    ]
