"""The OpenRouter plugin: attribution headers, comments, cost, the priced model list, key check, reasoning
details handed back (with a turn's tool calls too) and prompt-caching breakpoints."""

from __future__ import annotations

import json
from dataclasses import replace

import openai
import pytest

from providers import errors
from providers.contract import (
    ChatRequest,
    Finish,
    Message,
    ModelInfo,
    ProviderState,
    ReasoningDelta,
    ReasoningOptions,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from tests.fakes.fixtures import fixture_bytes
from tests.fakes.openai_dialect import FakeOpenAI, sse
from tests.fakes.samples import collect
from tests.plugins.openai_support import FLAVOURS, OPENROUTER_USAGE, hello, make

ROUTER = FLAVOURS["openrouter"]


@pytest.fixture
def fake():
    with FakeOpenAI("openrouter") as server:
        yield server


def test_default_base_url_is_openrouter():
    from providers.factory import create_llm_provider

    assert create_llm_provider("OPENROUTER", api_key=ROUTER.key).base_url == "https://openrouter.ai/api/v1"


def test_the_fake_replays_the_recording_with_its_comment_lines():
    assert fixture_bytes("openrouter_chat_stream.sse").startswith(b": OPENROUTER PROCESSING\n\n")


async def test_recorded_stream_with_comments_gives_text_usage_and_cost(fake):
    result = await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
    assert result.text == "Pebbles and Skipper."
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cost) == OPENROUTER_USAGE
    assert fake.chat_requests[-1].path == "/api/v1/chat/completions"


async def test_attribution_headers_have_defaults(fake, settings, monkeypatch):
    for name in ("QTAP_OPENROUTER_REFERER", "QTAP_OPENROUTER_TITLE"):
        monkeypatch.delenv(name, raising=False)
        if hasattr(settings, name):
            delattr(settings, name)
    await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
    headers = fake.chat_requests[-1].headers
    assert headers["http-referer"] == "http://127.0.0.1:8000/"
    assert headers["x-title"] == headers["x-openrouter-title"] == "qtap"


async def test_attribution_headers_come_from_settings_before_the_environment(fake, settings, monkeypatch):
    monkeypatch.setenv("QTAP_OPENROUTER_TITLE", "from env")
    monkeypatch.setenv("QTAP_OPENROUTER_REFERER", "https://env.example/")
    settings.QTAP_OPENROUTER_TITLE = "Team Chat"
    await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
    headers = fake.chat_requests[-1].headers
    assert headers["x-title"] == headers["x-openrouter-title"] == "Team Chat"
    assert headers["http-referer"] == "https://env.example/"  # no setting: the environment


async def test_models_carry_prices_per_million_tokens_and_context(fake):
    models = {m.id: m for m in await make(ROUTER, fake).list_models()}
    assert set(models) == {"anthropic/claude-sonnet-4", "openai/gpt-3.5-turbo", "openai/gpt-4.1-mini", "openai/gpt-4o"}
    assert models["openai/gpt-4o"] == ModelInfo(
        id="openai/gpt-4o",
        name="OpenAI: GPT-4o",
        context_window=128000,
        max_output_tokens=16384,
        supports_images=True,
        input_price_per_mtok=2.5,
        output_price_per_mtok=10.0,
    )
    assert models["openai/gpt-3.5-turbo"].supports_images is False


async def test_model_list_is_served_stale_when_a_refresh_fails(fake, monkeypatch):
    from providers.base import model_cache

    provider = make(ROUTER, fake)
    first = await provider.list_models()
    monkeypatch.setattr(model_cache, "ttl", 0.0)
    fake.fail_with(503, "no providers available", headers={"retry-after": "0"}, times=3)
    assert await provider.list_models() == first
    assert len([r for r in fake.requests if r.path == "/api/v1/models"]) == 4


async def test_validate_key_reads_the_key_endpoint(fake):
    fake.api_key = ROUTER.key
    await make(ROUTER, fake).validate_key()
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/api/v1/key")]


async def test_validate_key_with_a_wrong_key_is_an_authentication_error(fake):
    fake.api_key = ROUTER.key
    with pytest.raises(errors.AuthenticationError, match="User not found"):
        await make(ROUTER, fake, key="sk-or-v1-wrong").validate_key()


async def test_no_credits_is_quota_exceeded(fake):
    fake.fail_with(402, "Insufficient credits. Add more using https://openrouter.ai/credits")
    with pytest.raises(errors.QuotaExceededError, match="Insufficient credits"):
        await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))


async def test_error_chunk_with_finish_reason_error_raises(fake):
    fake.mid_stream(after=4, kind="error", message="Provider disconnected unexpectedly")
    with pytest.raises(errors.ProviderUnavailableError, match="Provider disconnected unexpectedly") as caught:
        await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
    assert caught.value.status is None  # it came inside a 200 stream


async def test_a_wrapped_upstream_error_says_what_the_upstream_said(fake):
    raw = '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
    body = {
        "error": {
            "message": "Provider returned error",
            "code": 401,
            "metadata": {"raw": raw, "provider_name": "Anthropic"},
        }
    }
    fake.fail_next(401, body)
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(make(ROUTER, fake).stream(hello("anthropic/claude-sonnet-4")))
    assert caught.value.message == "Provider returned error (Anthropic: invalid x-api-key)"


async def test_moderation_refusal_is_a_content_filter(fake):
    body = {
        "error": {
            "code": 403,
            "message": "Input was flagged by moderation",
            "metadata": {"reasons": ["violence"], "flagged_input": "…", "provider_name": "OpenAI"},
        }
    }
    fake.fail_next(403, body)
    with pytest.raises(errors.ContentFilterError, match="flagged by moderation"):
        await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))


# ---- reasoning: the recorded streams, the state handed back, the knob --------------------------------

DETAILS = "openrouter_chat_stream_reasoning_details.sse"  # anthropic/claude-sonnet-4.5: text + signature
ENCRYPTED = "openrouter_chat_stream_reasoning_encrypted.sse"  # openai/o3: one reasoning.encrypted item
CLAUDE = "anthropic/claude-sonnet-4.5"


def recorded_fragments(name: str) -> list[dict]:
    """Every ``delta.reasoning_details`` fragment of a recording, in order, as OpenRouter sent it."""
    fragments = []
    for line in fixture_bytes(name).decode().splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices") or ():
                fragments += choice["delta"].get("reasoning_details") or []
    return fragments


def recorded_signature() -> str:
    (signature,) = [f["signature"] for f in recorded_fragments(DETAILS) if f.get("signature")]
    return signature


def merged_claude_details() -> list[dict]:
    return [
        {
            "type": "reasoning.text",
            "text": "This is a simple arithmetic question. 2+2 equals 4.",
            "signature": recorded_signature(),
            "format": "anthropic-claude-v1",
            "index": 0,
        }
    ]


def second_turn(first_text: str, state, model: str = CLAUDE) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=(
            Message("user", "What is 2+2?"),
            Message("assistant", first_text, provider_state=state),
            Message("user", "And 3+3?"),
        ),
    )


async def test_recorded_reasoning_stream_gives_reasoning_then_text_then_state_usage_and_finish():
    with FakeOpenAI("openrouter", fixture=DETAILS) as fake:
        result = await collect(make(ROUTER, fake).stream(hello(CLAUDE)))
    deltas = [(type(e), e.text) for e in result.events if isinstance(e, TextDelta | ReasoningDelta)]
    assert deltas == [
        (ReasoningDelta, "This"),
        (ReasoningDelta, " is a simple arithmetic question. "),
        (ReasoningDelta, "2+2 equals 4."),
        (TextDelta, "2 "),
        (TextDelta, "+ 2 = 4"),
    ]
    assert result.usage == Usage(
        input_tokens=43, output_tokens=36, cost=0.000669, cached_input_tokens=0, reasoning_tokens=13
    )
    assert [type(e) for e in result.events[-3:]] == [ProviderState, Usage, Finish]
    (state,) = [e for e in result.events if isinstance(e, ProviderState)]
    assert state.value == {"reasoning_details": merged_claude_details()}  # the fragments merged per type and index
    json.dumps(state.value)  # storable as it is


async def test_recorded_encrypted_reasoning_is_kept_whole():
    with FakeOpenAI("openrouter", fixture=ENCRYPTED) as fake:
        result = await collect(make(ROUTER, fake).stream(hello("openai/o3")))
    assert result.text.startswith("I\u2019m ChatGPT, a large-language-model assistant created by OpenAI.")
    assert result.reasoning == ""  # o3 shows none: only the encrypted item
    (state,) = [e for e in result.events if isinstance(e, ProviderState)]
    assert state.value == {"reasoning_details": recorded_fragments(ENCRYPTED)}
    assert len(state.value["reasoning_details"][0]["data"]) > 1000
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cost) == (9, 104, 0.00085)
    assert (usage.cached_input_tokens, usage.reasoning_tokens) == (0, 0)


async def test_a_stream_without_reasoning_details_hands_back_no_state(fake):
    result = await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o")))
    assert not [e for e in result.events if isinstance(e, ProviderState)]


async def test_the_second_turn_sends_the_signed_reasoning_back_on_its_assistant_message():
    with FakeOpenAI("openrouter", fixture=DETAILS) as fake:
        provider = make(ROUTER, fake)
        first = await provider.complete(hello(CLAUDE))
        await collect(provider.stream(second_turn(first.text, first.provider_state)))
    sent = fake.chat_requests[-1]
    assert sent.json["messages"] == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "2 + 2 = 4", "reasoning_details": merged_claude_details()},
        {"role": "user", "content": cached("And 3+3?")},  # prompt caching is on by default
    ]
    assert recorded_signature().encode() in sent.body  # byte for byte on the wire


async def test_the_second_turn_sends_the_encrypted_reasoning_back_unchanged():
    with FakeOpenAI("openrouter", fixture=ENCRYPTED) as fake:
        provider = make(ROUTER, fake)
        first = await provider.complete(hello("openai/o3"))
        await collect(provider.stream(second_turn(first.text, first.provider_state, "openai/o3")))
    assistant = fake.chat_requests[-1].json["messages"][1]
    assert assistant["reasoning_details"] == recorded_fragments(ENCRYPTED)
    assert recorded_fragments(ENCRYPTED)[0]["data"].encode() in fake.chat_requests[-1].body


@pytest.mark.parametrize("state", [None, "not ours", {"reasoning_details": "not a list"}, {"other": 1}])
async def test_a_missing_or_foreign_state_sends_no_reasoning_details(fake, state):
    await collect(make(ROUTER, fake).stream(second_turn("4", state, "openai/gpt-4o")))
    assert fake.chat_requests[-1].json["messages"][1] == {"role": "assistant", "content": "4"}


@pytest.mark.parametrize(
    ("model", "options", "knob"),
    [
        (CLAUDE, ReasoningOptions(effort="high"), {"effort": "high"}),
        (CLAUDE, ReasoningOptions(budget_tokens=2048), {"max_tokens": 2048}),
        ("openai/o3", ReasoningOptions(effort="low", summary=False), {"effort": "low", "exclude": True}),
        ("openai/gpt-5", ReasoningOptions(effort="minimal"), {"effort": "minimal"}),
        ("google/gemini-2.5-flash", ReasoningOptions(budget_tokens=0), {"max_tokens": 0}),
        ("x-ai/grok-4", ReasoningOptions(effort="none"), {"effort": "none"}),
        ("deepseek/deepseek-r1", ReasoningOptions(summary=False), {"exclude": True}),
    ],
)
async def test_the_unified_reasoning_parameter_carries_the_effort_or_budget(fake, model, options, knob):
    await collect(make(ROUTER, fake).stream(hello(model, reasoning=options)))
    body = fake.chat_requests[-1].json
    assert body["reasoning"] == knob
    assert "reasoning_effort" not in body


@pytest.mark.parametrize(
    ("model", "options", "refusal"),
    [
        (
            CLAUDE,
            ReasoningOptions(budget_tokens=512),
            r"'anthropic/claude-sonnet-4.5'.* 1024 to 128000 tokens, not 512",
        ),
        (
            "openai/o3",
            ReasoningOptions(budget_tokens=4096),
            r"'openai/o3' takes no thinking budget \(it takes a reasoning effort of none, minimal, low, medium, high",
        ),
        (
            "x-ai/grok-4",
            ReasoningOptions(effort="xhigh"),
            r"'x-ai/grok-4' takes a reasoning effort of none, low, medium",
        ),
        ("openai/gpt-4o", ReasoningOptions(effort="high"), r"'openai/gpt-4o' takes no reasoning effort"),
        (CLAUDE, ReasoningOptions(effort="high", budget_tokens=2048), r"'anthropic/claude-sonnet-4.5'.*not both"),
    ],
)
async def test_an_effort_or_budget_the_model_cannot_take_is_refused_before_any_request(fake, model, options, refusal):
    with pytest.raises(errors.InvalidRequestError, match=refusal):
        await collect(make(ROUTER, fake).stream(hello(model, reasoning=options)))
    assert fake.requests == []


@pytest.mark.parametrize("name", [DETAILS, ENCRYPTED])
async def test_the_official_client_reads_the_recorded_reasoning_streams(name):
    with FakeOpenAI("openrouter", fixture=name) as fake:
        async with openai.AsyncOpenAI(api_key=ROUTER.key, base_url=fake.base_url, max_retries=0) as api:
            stream = await api.chat.completions.create(
                model=CLAUDE, messages=[{"role": "user", "content": "What is 2+2?"}], stream=True
            )
            text, fragments, usage, finish = [], [], None, None
            async for chunk in stream:
                for choice in chunk.choices:
                    text.append(choice.delta.content or "")
                    fragments += (choice.delta.model_extra or {}).get("reasoning_details") or []
                    finish = choice.finish_reason or finish
                usage = chunk.usage or usage
    assert fragments == recorded_fragments(name)
    assert finish == "stop"
    expected = (43, 13) if name == DETAILS else (9, 0)
    assert (usage.prompt_tokens, usage.completion_tokens_details.reasoning_tokens) == expected
    assert usage.prompt_tokens_details.cached_tokens == 0
    if name == DETAILS:
        assert "".join(text) == "2 + 2 = 4"


async def test_a_whole_completion_hands_back_its_reasoning_details_too(fake):
    encrypted = {"type": "reasoning.encrypted", "data": "gAAAAB-opaque==", "id": "rs_1"}
    details = [{**encrypted, "format": "openai-responses-v1"}]
    message = {"role": "assistant", "content": "Hi.", "reasoning": None, "reasoning_details": details}
    answer = {"id": "gen-1", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    fake.fail_next(200, answer)  # a gateway that ignores stream: true
    result = await collect(make(ROUTER, fake).stream(hello("openai/o3")))
    assert result.text == "Hi."
    assert [e.value for e in result.events if isinstance(e, ProviderState)] == [{"reasoning_details": details}]
    assert isinstance(result.events[-1], Finish)


# ---- prompt caching: Anthropic upstreams need cache_control breakpoints; the others cache by themselves ----


def conversation(model: str, **options) -> ChatRequest:
    messages = (
        Message("system", "You are a careful reviewer of long documents."),
        Message("user", "Here is the document: …"),
        Message("assistant", "Read it."),
        Message("user", "Summarise section 2."),
    )
    return ChatRequest(model=model, messages=messages, options=options)


def cached(text: str) -> list[dict]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


@pytest.mark.parametrize("options", [{}, {"prompt_caching": None}, {"prompt_caching": True}])  # unset: on
async def test_prompt_caching_marks_the_system_prompt_and_the_last_message_for_anthropic(fake, options):
    await collect(make(ROUTER, fake).stream(conversation(CLAUDE, **options)))
    assert fake.chat_requests[-1].json["messages"] == [
        {"role": "system", "content": cached("You are a careful reviewer of long documents.")},
        {"role": "user", "content": "Here is the document: …"},
        {"role": "assistant", "content": "Read it."},
        {"role": "user", "content": cached("Summarise section 2.")},
    ]


@pytest.mark.parametrize(
    ("model", "options"),
    [(CLAUDE, {"prompt_caching": False}), ("openai/gpt-4o", {}), ("google/gemini-2.5-flash", {})],
)
async def test_no_breakpoints_when_caching_is_off_or_the_upstream_caches_by_itself(fake, model, options):
    await collect(make(ROUTER, fake).stream(conversation(model, **options)))
    sent = fake.chat_requests[-1]
    assert all(isinstance(m["content"], str) for m in sent.json["messages"])
    assert b"cache_control" not in sent.body


async def test_cache_reads_and_writes_arrive_in_the_usage(fake):
    fake.reply(["Done."], usage=(3326, 12), cached=3211, cache_write=115)
    usage = (await collect(make(ROUTER, fake).stream(conversation(CLAUDE)))).usage
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens) == (3326, 3211, 115)


def router_chunk(delta: dict, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": finish}
    return sse({"id": "gen-1", "object": "chat.completion.chunk", "model": "openai/gpt-5", "choices": [choice]})


async def test_summary_and_encrypted_fragments_merge_into_one_item_each_and_unknown_ones_are_kept(fake):
    fmt = {"format": "openai-responses-v1"}
    fake.chunks = [
        router_chunk(
            {
                "reasoning": "Weighing",
                "reasoning_details": [{"type": "reasoning.summary", "summary": "Weighing", **fmt, "index": 0}],
            }
        ),
        router_chunk(
            {
                "reasoning": " options",
                "reasoning_details": [{"type": "reasoning.summary", "summary": " options", **fmt, "index": 0}],
            }
        ),
        router_chunk(
            {
                "reasoning": None,
                "reasoning_details": [
                    {"type": "reasoning.encrypted", "data": "gAAA-1", "id": "rs_9", **fmt, "index": 1}
                ],
            }
        ),
        router_chunk(
            {"reasoning_details": [{"type": "reasoning.future", "blob": "kept as sent", "index": 2}, "not an object"]}
        ),
        router_chunk({"content": "Pick B.", "audio": {"id": "ignored"}}),
        router_chunk({}, finish="stop"),
        b"data: [DONE]\n\n",
    ]
    result = await collect(make(ROUTER, fake).stream(hello("openai/gpt-5")))
    assert (result.reasoning, result.text) == ("Weighing options", "Pick B.")
    (state,) = [e.value for e in result.events if isinstance(e, ProviderState)]
    assert state == {
        "reasoning_details": [
            {"type": "reasoning.summary", "summary": "Weighing options", **fmt, "index": 0},
            {"type": "reasoning.encrypted", "data": "gAAA-1", "id": "rs_9", **fmt, "index": 1},
            {"type": "reasoning.future", "blob": "kept as sent", "index": 2},
        ]
    }


async def test_hiding_the_reasoning_of_a_model_that_does_not_reason_sends_nothing(fake):
    await collect(make(ROUTER, fake).stream(hello("openai/gpt-4o", reasoning=ReasoningOptions(summary=False))))
    assert "reasoning" not in fake.chat_requests[-1].json


# ---- tools: the reasoning_details of a turn of calls go back on the message that carries them ---------

WEATHER = ToolSpec("get_weather", "The weather in a city.", {"type": "object", "properties": {"city": {}}})


async def test_the_signed_reasoning_of_a_turn_of_calls_goes_back_with_its_tool_calls(fake):
    """Anthropic and Gemini upstreams refuse a turn of calls without the reasoning that led to it."""
    signature = {"type": "reasoning.text", "signature": "Et0BCkgIsig==", "format": "anthropic-claude-v1", "index": 0}
    thinking = [
        {"type": "reasoning.text", "text": "Need the ", "format": "anthropic-claude-v1", "index": 0},
        {"type": "reasoning.text", "text": "weather.", "format": "anthropic-claude-v1", "index": 0},
        signature,
    ]
    fake.queue(fake.scripted(reasoning_details=thinking, tool_calls=[("toolu_01", "get_weather", '{"city":"Oslo"}')]))
    fake.queue(fake.scripted(["Cold."]))
    provider = make(ROUTER, fake)
    question = ChatRequest(CLAUDE, (Message("user", "Weather in Oslo?"),), tools=(WEATHER,))
    first = await provider.complete(question)
    assert (first.reasoning, first.finish_reason) == ("Need the weather.", "tool_calls")
    assert first.tool_calls == (ToolCall("toolu_01", "get_weather", {"city": "Oslo"}),)
    merged = [{**thinking[0], "text": "Need the weather.", "signature": "Et0BCkgIsig=="}]
    assert first.provider_state == {"reasoning_details": merged}
    turn = Message("assistant", first.text, provider_state=first.provider_state, tool_calls=first.tool_calls)
    answer = Message("tool", "-3°C, snow", tool_call_id="toolu_01", tool_name="get_weather")
    final = await provider.complete(replace(question, messages=(*question.messages, turn, answer)))
    assert final.text == "Cold."
    assert fake.chat_requests[-1].json["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_01",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
            "reasoning_details": merged,
        },
        # Prompt caching (on by default for Anthropic upstreams) marks the last message: here the tool's result.
        {"role": "tool", "tool_call_id": "toolu_01", "content": cached("-3°C, snow")},
    ]


async def test_a_conversation_ending_on_a_turn_of_calls_marks_no_breakpoint_on_it(fake):
    call = ToolCall("toolu_02", "get_weather", {"city": "Oslo"})
    messages = (Message("user", "Weather in Oslo?"), Message("assistant", "", tool_calls=(call,)))
    await collect(make(ROUTER, fake).stream(ChatRequest(CLAUDE, messages, tools=(WEATHER,))))
    sent = fake.chat_requests[-1].json["messages"]
    assert sent[-1]["content"] is None
    assert sent[0]["content"] == "Weather in Oslo?"  # only the last message and the system prompt are marked
