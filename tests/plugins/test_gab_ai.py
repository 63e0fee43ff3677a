"""The Gab AI plugin: 402 for spent credits, and tolerance for streams without [DONE] or usage."""

from __future__ import annotations

import pytest

from providers import errors
from providers.contract import ChatRequest, Message, ProviderState, ReasoningDelta, ReasoningOptions, TextDelta
from tests.fakes.openai_dialect import FakeOpenAI
from tests.fakes.samples import collect, image_attachment
from tests.plugins.openai_support import FLAVOURS, hello, make

GAB = FLAVOURS["gab-ai"]


@pytest.fixture
def fake():
    with FakeOpenAI("gab") as server:
        yield server


def test_default_base_url_is_gab():
    from providers.factory import create_llm_provider

    assert create_llm_provider("GAB_AI", api_key=GAB.key).base_url == "https://gab.ai/v1"


async def test_credits_exhausted_is_quota_exceeded(fake):
    message = fake.fail_with(402, "Insufficient credits. Please add credits to continue.")
    with pytest.raises(errors.QuotaExceededError) as caught:
        await collect(make(GAB, fake).stream(hello("arya")))
    assert caught.value.message == message
    assert caught.value.code == "quota_exceeded"
    assert len(fake.requests) == 1


async def test_stream_without_done_or_usage_finishes_normally(fake):
    fake.reply(["Hello", " there"], usage=None, done=False)
    result = await collect(make(GAB, fake).stream(hello("arya")))
    assert result.text == "Hello there"
    assert result.usage is None
    assert result.finish == "stop"


async def test_stream_that_ends_cleanly_without_a_finish_reason_is_finished(fake):
    fake.reply(["Hi"], finish=None, usage=None, done=False)
    result = await collect(make(GAB, fake).stream(hello("arya")))
    assert result.text == "Hi"
    assert result.finish == "stop"


async def test_usage_without_done_is_still_reported(fake):
    fake.reply(["Hi"], usage=(5, 1), done=False)
    result = await collect(make(GAB, fake).stream(hello("arya")))
    assert (result.usage.input_tokens, result.usage.output_tokens) == (5, 1)


async def test_a_connection_cut_mid_body_is_still_an_error(fake):
    fake.reply(["a", "b", "c", "d"], done=False)
    fake.mid_stream(after=3, kind="drop")
    with pytest.raises(errors.ProtocolError):
        await collect(make(GAB, fake).stream(hello("arya")))


async def test_images_are_refused_before_any_request(fake):
    request = ChatRequest(model="arya", messages=(Message("user", "see", (image_attachment("cat.png"),)),))
    with pytest.raises(errors.UnsupportedAttachmentError, match=r"cat\.png.*no attachments"):
        await collect(make(GAB, fake).stream(request))
    assert fake.requests == []


async def test_validate_key_lists_models(fake):
    await make(GAB, fake).validate_key()
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/v1/models")]


async def test_a_reasoning_stream_gives_reasoning_then_text_and_the_detailed_usage(fake):
    fake.reply(["4"], reasoning=["Adding", " two and two."], usage=(40, 12), cached=32, reasoning_tokens=9)
    result = await collect(make(GAB, fake).stream(hello("arya")))
    deltas = [(type(e), e.text) for e in result.events if isinstance(e, TextDelta | ReasoningDelta)]
    assert deltas == [(ReasoningDelta, "Adding"), (ReasoningDelta, " two and two."), (TextDelta, "4")]
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens) == (
        40,
        12,
        32,
        9,
    )
    assert not [e for e in result.events if isinstance(e, ProviderState)]  # nothing to hand back


async def test_a_reasoning_effort_is_refused_before_any_request(fake):
    with pytest.raises(errors.InvalidRequestError, match=r"'arya' takes no reasoning effort"):
        await collect(make(GAB, fake).stream(hello("arya", reasoning=ReasoningOptions(effort="high"))))
    assert fake.requests == []
