"""The local OpenAI-dialect server, read by the official ``openai`` client: if the fake drifted from
the real wire format, the official parser would disagree with ours."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from tests.fakes.fixtures import fixture_bytes
from tests.fakes.openai_dialect import PNG_1X1, FakeOpenAI
from tests.fakes.openai_responses import FakeResponses
from tests.plugins.openai_support import OPENAI_TEXT, OPENAI_USAGE, OPENROUTER_TEXT, OPENROUTER_USAGE


def client(fake: FakeOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test-official-client", base_url=fake.base_url, max_retries=0)


async def read_stream(fake: FakeOpenAI, model: str = "gpt-4o-mini"):
    async with client(fake) as api:
        stream = await api.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "What is 1231 * 2331?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage, finish = [], None, None
        async for chunk in stream:
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
            usage = chunk.usage or usage
    return "".join(text), usage, finish


@pytest.mark.parametrize("flavour", ["openai", "xai", "gab", "compatible"])
async def test_official_client_reads_the_recorded_openai_stream(flavour):
    with FakeOpenAI(flavour) as fake:
        text, usage, finish = await read_stream(fake)
    assert text == OPENAI_TEXT
    assert (usage.prompt_tokens, usage.completion_tokens) == OPENAI_USAGE
    assert finish == "stop"


async def test_official_client_reads_the_recorded_openrouter_stream():
    with FakeOpenAI("openrouter") as fake:
        text, usage, finish = await read_stream(fake, "openai/gpt-4o")
        assert fake.chat_requests[-1].path == "/api/v1/chat/completions"
    assert text == OPENROUTER_TEXT
    assert (usage.prompt_tokens, usage.completion_tokens) == OPENROUTER_USAGE[:2]
    assert usage.model_extra["cost"] == OPENROUTER_USAGE[2]
    assert finish == "stop"


@pytest.mark.parametrize("flavour", ["openai", "openrouter"])
async def test_official_client_reads_scripted_and_synthetic_streams(flavour):
    with FakeOpenAI(flavour) as fake:
        fake.reply(["Hel", "lo"], usage=(3, 2), finish="length")
        text, usage, finish = await read_stream(fake)
        assert (text, usage.completion_tokens, finish) == ("Hello", 2, "length")
        fake.synthetic(300)
        text, usage, _ = await read_stream(fake)
        assert text == "tok " * 300
        assert usage.completion_tokens == 300


async def test_official_client_non_streaming_completion():
    with FakeOpenAI("openai") as fake:
        async with client(fake) as api:
            answer = await api.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content == OPENAI_TEXT
    assert answer.usage.prompt_tokens == OPENAI_USAGE[0]


async def test_official_client_raises_on_the_mid_stream_error_event():
    with FakeOpenAI("openai") as fake:
        fake.mid_stream(after=3, kind="error", message="The server had an error")
        with pytest.raises(openai.APIError, match="The server had an error"):
            await read_stream(fake)


@pytest.mark.parametrize(
    ("flavour", "exception"),
    [
        ("openai", openai.AuthenticationError),
        ("xai", openai.BadRequestError),
        ("compatible", openai.AuthenticationError),
    ],
)
async def test_official_client_sees_each_flavours_bad_key_answer(flavour, exception):
    with FakeOpenAI(flavour) as fake:
        fake.api_key = "the-right-key"
        _, _, message = fake.bad_key_answer()
        with pytest.raises(exception) as caught:
            await read_stream(fake)
    # The SDK unwraps body["error"]: for xAI that is the bare message string (PROTOCOLS.md §4.4).
    assert message in str(caught.value) or caught.value.body == message


async def test_official_client_lists_models_and_generates_images():
    with FakeOpenAI("openai") as fake:
        async with client(fake) as api:
            models = [m.id async for m in api.models.list()]
            images = await api.images.generate(model="gpt-image-1", prompt="a pelican", n=2)
            fake.image_mode = "url"
            linked = await api.images.generate(model="dall-e-3", prompt="an otter")
    assert models == ["gpt-4o-mini", "gpt-4o", "o3-mini"]
    assert [base64.b64decode(i.b64_json) for i in images.data] == [PNG_1X1, PNG_1X1]
    assert linked.data[0].url == f"{fake.origin}/files/generated-0.png"
    assert linked.data[0].revised_prompt == "A detailed rendering of: an otter"


async def test_official_client_reads_the_recorded_openrouter_model_list():
    with FakeOpenAI("openrouter") as fake:
        async with client(fake) as api:
            models = [m.id async for m in api.models.list()]
    assert "openai/gpt-4o" in models
    assert len(models) == 4


@pytest.mark.parametrize(
    ("flavour", "path", "fixture", "method"),
    [
        ("openai", "/chat/completions", "openai_chat_stream_text.sse", "POST"),
        ("openrouter", "/chat/completions", "openrouter_chat_stream.sse", "POST"),
        ("openrouter", "/models", "openrouter_models.json", "GET"),
    ],
)
async def test_the_fake_replays_recordings_byte_for_byte(flavour, path, fixture, method):
    with FakeOpenAI(flavour) as fake:
        async with httpx.AsyncClient() as raw:
            body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
            answer = await raw.request(method, fake.base_url + path, json=body if method == "POST" else None)
    assert answer.status_code == 200
    assert answer.content == fixture_bytes(fixture)


# ---- the Responses API (tests/fakes/openai_responses.FakeResponses) --------------------------------


async def read_responses_stream(fake: FakeResponses, model: str = "o3-mini"):
    async with (
        client(fake) as api,
        api.responses.stream(
            model=model,
            input=[{"role": "user", "content": "How do I cross the street?"}],
            include=["reasoning.encrypted_content"],
            reasoning={"effort": "high", "summary": "auto"},
            store=False,
        ) as stream,
    ):
        text, summary, final = [], [], None
        async for event in stream:
            if event.type == "response.output_text.delta":
                text.append(event.delta)
            elif event.type == "response.reasoning_summary_text.delta":
                summary.append(event.delta)
            elif event.type == "response.incomplete":
                final = event.response  # the SDK's final response is only a completed one
        final = final or await stream.get_final_response()
    return "".join(text), "".join(summary), final


async def test_official_client_reads_the_recorded_responses_stream():
    from tests.plugins.test_openai_responses import RECORDED_REASONING, RECORDED_TEXT

    with FakeResponses("openai") as fake:
        text, summary, final = await read_responses_stream(fake)
        assert fake.responses_requests[-1].json["store"] is False
    assert text == RECORDED_TEXT == final.output_text
    assert summary == "".join(part["text"] for part in RECORDED_REASONING[0]["summary"])
    reasoning = next(item for item in final.output if item.type == "reasoning")
    assert reasoning.encrypted_content == RECORDED_REASONING[0]["encrypted_content"]
    usage = final.usage
    assert (usage.input_tokens, usage.output_tokens) == (13, 1680)
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (0, 1408)


@pytest.mark.parametrize("flavour", ["openai", "xai"])
async def test_official_client_reads_scripted_and_synthetic_responses_streams(flavour):
    with FakeResponses(flavour) as fake:
        fake.reply(["Hel", "lo"], reasoning=["**Plan**\n\nSay hello."], usage=(13, 5), cached=4, reasoning_tokens=3)
        text, summary, final = await read_responses_stream(fake)
        assert (text, summary, final.status) == ("Hello", "**Plan**\n\nSay hello.", "completed")
        assert (final.usage.input_tokens_details.cached_tokens, final.usage.output_tokens_details.reasoning_tokens) == (
            4,
            3,
        )
        assert next(i for i in final.output if i.type == "reasoning").encrypted_content.startswith("gAAAA")
        fake.reply(["Part"], status="incomplete", incomplete="max_output_tokens")
        _, _, cut = await read_responses_stream(fake)
        assert (cut.status, cut.incomplete_details.reason) == ("incomplete", "max_output_tokens")
        fake.synthetic(300)
        text, _, final = await read_responses_stream(fake)
        assert text == "tok " * 300
        assert final.usage.output_tokens == 300
