"""The local Anthropic API is checked against the official ``anthropic`` client: if the fake drifted
from the real wire format, the official client would stop reading it."""

from __future__ import annotations

import anthropic
import pytest

from tests.fakes.anthropic import CACHED_USAGE, TEXTS, USAGE, FakeAnthropic, error_body
from tests.fakes.stream_faults import StreamFault

KEY = "sk-ant-api03-official-client-check-0001"
MESSAGES = [{"role": "user", "content": "Say just hello"}]
HAIKU = "claude-haiku-4-5-20251001"


@pytest.fixture
def fake():
    with FakeAnthropic(api_key=KEY) as server:
        yield server


def client(fake: FakeAnthropic, key: str = KEY) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.origin, api_key=key, max_retries=0)


@pytest.mark.parametrize("reply", ["text", "thinking"])
async def test_messages_stream_reads_the_recorded_reply_and_usage(fake, reply):
    fake.reply = reply
    async with client(fake).messages.stream(model="claude-haiku-4-5-20251001", max_tokens=1024, messages=MESSAGES) as s:
        text = await s.get_final_text()
        message = await s.get_final_message()

    assert text == TEXTS[reply]
    assert (message.usage.input_tokens, message.usage.output_tokens) == USAGE[reply]
    assert message.stop_reason == "end_turn"
    if reply == "thinking":
        thinking = [block for block in message.content if block.type == "thinking"]
        assert thinking and thinking[0].thinking.startswith("The user wants")
        assert thinking[0].signature  # the signature_delta was read too


@pytest.mark.parametrize(
    ("reply", "stop_reason"),
    [("thinking_tool_use", "tool_use"), ("adaptive_thinking", "end_turn"), ("redacted_thinking", "end_turn")],
)
async def test_the_thinking_recordings_read_as_whole_messages(fake, reply, stop_reason):
    fake.reply = reply
    async with client(fake).messages.stream(model="claude-opus-4-6", max_tokens=1024, messages=MESSAGES) as s:
        message = await s.get_final_message()

    assert "".join(block.text for block in message.content if block.type == "text") == TEXTS[reply]
    assert (message.usage.input_tokens, message.usage.output_tokens) == USAGE[reply]
    assert message.stop_reason == stop_reason
    kinds = [block.type for block in message.content]
    if reply == "thinking_tool_use":
        assert kinds == ["thinking", "tool_use"]
        assert message.content[0].signature.startswith("EoQDCm0IDhgC")
        assert (message.content[1].name, message.content[1].input) == ("fixed_version", {})
    elif reply == "adaptive_thinking":
        assert kinds == ["text", "thinking", "text"]  # text before the thinking, as recorded
        assert message.content[1].thinking == "Brief answer with two pet pelican names."
    else:
        assert kinds == ["redacted_thinking", "redacted_thinking", "text"]
        assert message.content[0].data.startswith("EqkECkYIBxgC")


async def test_the_cached_stream_reports_the_cache_figures(fake):
    fake.reply = "cached"
    async with client(fake).messages.stream(model="claude-opus-4-6", max_tokens=1024, messages=MESSAGES) as s:
        message = await s.get_final_message()

    assert message.content[0].text == TEXTS["cached"]
    assert message.usage.input_tokens == CACHED_USAGE["input_tokens"]
    assert message.usage.cache_read_input_tokens == 1111
    assert message.usage.cache_creation_input_tokens == 418
    assert message.usage.output_tokens == 33


async def test_the_long_thinking_stream_is_read_whole(fake):
    fake.thinking_tokens = 50
    async with client(fake).messages.stream(model="m", max_tokens=1024, messages=MESSAGES) as s:
        message = await s.get_final_message()

    thinking, answer = message.content
    assert thinking.thinking == "".join(f"t{i} " for i in range(50))
    assert thinking.signature
    assert answer.text == "".join(f"w{i} " for i in range(50))


async def test_create_stream_yields_every_event_in_order(fake):
    events = await client(fake).messages.create(
        model="claude-haiku-4-5-20251001", max_tokens=1024, messages=MESSAGES, stream=True
    )
    kinds = [event.type async for event in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


async def test_long_synthetic_stream_is_read_whole(fake):
    fake.long_tokens = 200
    async with client(fake).messages.stream(model="m", max_tokens=1024, messages=MESSAGES) as s:
        text = await s.get_final_text()
        message = await s.get_final_message()
    assert text == "".join(f"w{i} " for i in range(200))
    assert message.usage.output_tokens == 200


async def test_error_event_mid_stream_is_raised_by_the_client(fake):
    fake.stream_fault = StreamFault("error", after=3)
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        async with client(fake).messages.stream(model="m", max_tokens=1024, messages=MESSAGES) as s:
            await s.get_final_text()


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (429, "rate_limit_error", anthropic.RateLimitError),
        (529, "overloaded_error", anthropic.APIStatusError),
        (404, "not_found_error", anthropic.NotFoundError),
    ],
)
async def test_http_errors_are_what_the_client_expects(fake, status, error_type, exception):
    fake.fail_next(status, error_body(error_type, "injected"), headers={"retry-after": "1"})
    with pytest.raises(exception) as caught:
        await client(fake).messages.create(model="m", max_tokens=10, messages=MESSAGES)
    assert caught.value.status_code == status
    assert caught.value.body["error"]["type"] == error_type


async def test_bad_key_and_paged_models(fake):
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        await client(fake, key="sk-ant-wrong").models.list()
    ids = [model.id async for model in client(fake).models.list(limit=2)]
    assert ids == ["claude-opus-4-6", "claude-haiku-4-5-20251001", "claude-3-haiku-20240307"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "must be greater than `thinking.budget_tokens`"),
        ({"thinking": {"type": "adaptive"}, "extra_body": {"temperature": 0.5}}, "may only be set to 1"),
        (
            {"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}] * 5},
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
    ],
)
async def test_what_the_api_refuses_is_a_400_the_client_raises(fake, extra, message):
    with pytest.raises(anthropic.BadRequestError, match=message):
        await client(fake).messages.create(model=HAIKU, max_tokens=1024, messages=MESSAGES, **extra)
    fake.reply = "thinking"
    budget = {"type": "enabled", "budget_tokens": 2048}
    async with client(fake).messages.stream(model=HAIKU, max_tokens=4096, messages=MESSAGES, thinking=budget) as s:
        message = await s.get_final_message()
    assert message.content[0].type == "thinking"  # the same budget below max_tokens is taken
