"""The xAI Grok plugin: xAI's error bodies, its key check, reasoning token counts and images."""

from __future__ import annotations

import base64

import pytest

from providers import errors
from providers.contract import Attachment, ChatRequest, ImageRequest, Message
from providers.factory import create_image_provider
from tests.fakes.openai_dialect import FakeOpenAI, sse
from tests.fakes.samples import assert_no_secret, collect, jpeg_bytes, pdf_attachment
from tests.plugins.openai_support import CHAT_COMPLETIONS, FLAVOURS, hello, make

GROK = FLAVOURS["grok"]


@pytest.fixture
def fake():
    with FakeOpenAI("xai") as server:
        yield server


def test_default_base_url_is_xai():
    from providers.factory import create_llm_provider

    assert create_llm_provider("GROK", api_key=GROK.key).base_url == "https://api.x.ai/v1"


async def test_bad_key_is_http_400_with_xai_body_and_an_authentication_error(fake):
    fake.api_key = GROK.key
    provider = make(GROK, fake, key="xai-wrong")
    with pytest.raises(errors.AuthenticationError) as caught:
        await collect(provider.stream(hello("grok-3")))
    assert caught.value.status == 400
    assert caught.value.message.startswith("Incorrect API key provided")
    assert len(fake.requests) == 1


async def test_other_400s_stay_invalid_requests_with_the_xai_message(fake):
    fake.fail_with(400, "Argument not supported: logprobs")
    with pytest.raises(errors.InvalidRequestError, match="Argument not supported") as caught:
        await collect(make(GROK, fake).stream(hello("grok-3")))
    assert not isinstance(caught.value, errors.AuthenticationError)


async def test_validate_key_reads_the_api_key_endpoint(fake):
    await make(GROK, fake).validate_key()
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/v1/api-key")]
    assert fake.requests[0].headers["authorization"] == f"Bearer {GROK.key}"


@pytest.mark.parametrize(
    ("flag", "words"),
    [("api_key_disabled", "disabled"), ("api_key_blocked", "key is blocked"), ("team_blocked", "team")],
)
async def test_validate_key_refuses_blocked_or_disabled_keys(fake, flag, words):
    fake.key_flags = {flag: True}
    with pytest.raises(errors.PermissionDeniedError, match=words) as caught:
        await make(GROK, fake).validate_key()
    assert_no_secret(GROK.key, str(caught.value))


async def test_reasoning_tokens_count_as_output(fake):
    usage = {
        "prompt_tokens": 32,
        "completion_tokens": 9,
        "total_tokens": 135,
        "completion_tokens_details": {"reasoning_tokens": 94},
    }
    fake.chunks = [
        sse(
            {
                "id": "a3d1",
                "object": "chat.completion.chunk",
                "model": "grok-3-mini",
                "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Hmm."}}],
            }
        ),
        sse(
            {
                "id": "a3d1",
                "object": "chat.completion.chunk",
                "model": "grok-3-mini",
                "choices": [{"index": 0, "delta": {"content": "303"}, "finish_reason": "stop"}],
                "usage": usage,
            }
        ),
        b"data: [DONE]\n\n",
    ]
    result = await collect(make(GROK, fake).stream(hello("grok-3-mini")))
    assert result.reasoning == "Hmm."
    assert result.text == "303"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (32, 103)


async def test_jpeg_attachment_goes_as_a_data_url_and_pdf_is_refused(fake):
    jpeg = jpeg_bytes()
    request = ChatRequest(
        model="grok-2-vision-1212",
        messages=(Message("user", "what?", (Attachment("p.jpg", "image/jpeg", jpeg),)),),
        options=CHAT_COMPLETIONS,
    )
    await collect(make(GROK, fake).stream(request))
    parts = fake.chat_requests[-1].json["messages"][0]["content"]
    assert parts[1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()},
    }
    pdf = ChatRequest(
        model="grok-3", messages=(Message("user", "read", (pdf_attachment(),)),), options=CHAT_COMPLETIONS
    )
    with pytest.raises(errors.UnsupportedAttachmentError, match=r"report\.pdf"):
        await collect(make(GROK, fake).stream(pdf))
    assert len(fake.requests) == 1


async def test_grok_2_image_sends_no_size_quality_or_style_and_keeps_revised_prompt(fake):
    provider = create_image_provider("GROK", api_key=GROK.key, base_url=fake.base_url)
    result = await provider.generate(
        ImageRequest(
            prompt="a cat in a tree",
            model="grok-2-image",
            n=2,
            size="1024x1024",
            quality="hd",
            style="vivid",
            aspect_ratio="16:9",
        )
    )
    assert len(result) == 2
    assert all(r.mime_type == "image/png" and r.data.startswith(b"\x89PNG") for r in result)
    assert result[0].revised_prompt == "A detailed rendering of: a cat in a tree"
    assert fake.requests[-1].json == {
        "model": "grok-2-image",
        "prompt": "a cat in a tree",
        "n": 2,
        "response_format": "b64_json",
    }


async def test_grok_imagine_takes_an_aspect_ratio(fake):
    provider = create_image_provider("GROK", api_key=GROK.key, base_url=fake.base_url)
    await provider.generate(ImageRequest(prompt="sunset", model="grok-imagine-image", aspect_ratio="16:9"))
    assert fake.requests[-1].json["aspect_ratio"] == "16:9"


async def test_image_url_answer_is_fetched_without_the_key(fake):
    fake.image_mode = "url"
    provider = create_image_provider("GROK", api_key=GROK.key, base_url=fake.base_url)
    result = await provider.generate(ImageRequest(prompt="x", model="grok-imagine-image"))
    assert result[0].data.startswith(b"\x89PNG")
    assert "authorization" not in fake.requests[-1].headers
