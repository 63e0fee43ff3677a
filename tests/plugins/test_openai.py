"""The OpenAI plugin: attachments, reasoning models' token parameter, strict stream ends, images."""

from __future__ import annotations

import base64

import pytest

from providers import errors
from providers.contract import Attachment, ChatRequest, ImageRequest, Message
from providers.factory import create_image_provider
from providers.openai_format import Dialect, build_chat_body
from tests.fakes.fixtures import fixture_bytes
from tests.fakes.openai_dialect import JPEG_BYTES, PNG_1X1, FakeOpenAI
from tests.fakes.samples import PDF_BYTES, assert_no_secret, collect, debug_logging, png_bytes
from tests.plugins.openai_support import CHAT_COMPLETIONS, FLAVOURS, OPENAI_TEXT, OPENAI_USAGE, hello, make

OPENAI = FLAVOURS["openai"]


@pytest.fixture
def fake():
    with FakeOpenAI("openai") as server:
        yield server


def images(fake: FakeOpenAI):
    return create_image_provider("OPENAI", api_key=OPENAI.key, base_url=fake.base_url)


async def test_image_and_pdf_attachments_become_content_parts(fake):
    png = png_bytes()
    request = ChatRequest(
        model="gpt-4o",
        options=CHAT_COMPLETIONS,
        messages=(
            Message("system", "Describe things."),
            Message(
                "user",
                "What is in these?",
                (Attachment("cat.png", "image/png", png), Attachment("report.pdf", "application/pdf", PDF_BYTES)),
            ),
        ),
    )
    await collect(make(OPENAI, fake).stream(request))
    messages = fake.chat_requests[-1].json["messages"]
    assert messages[0] == {"role": "system", "content": "Describe things."}
    assert messages[1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}},
            {
                "type": "file",
                "file": {
                    "filename": "report.pdf",
                    "file_data": "data:application/pdf;base64," + base64.b64encode(PDF_BYTES).decode(),
                },
            },
        ],
    }


async def test_attachment_on_an_assistant_message_is_refused_before_sending(fake):
    request = ChatRequest(
        model="gpt-4o",
        messages=(Message("assistant", "here", (Attachment("x.png", "image/png", png_bytes()),)),),
        options=CHAT_COMPLETIONS,
    )
    with pytest.raises(errors.UnsupportedAttachmentError, match=r"x\.png.*user messages"):
        await collect(make(OPENAI, fake).stream(request))
    assert fake.requests == []


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5.4-mini"])
async def test_reasoning_models_get_max_completion_tokens(fake, model):
    await collect(make(OPENAI, fake).stream(hello(model, max_tokens=500)))
    body = fake.chat_requests[-1].json
    assert body["max_completion_tokens"] == 500
    assert "max_tokens" not in body


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1-mini", "omni-moderation", "chatgpt-4o-latest"])
async def test_other_models_get_max_tokens(fake, model):
    await collect(make(OPENAI, fake).stream(hello(model, max_tokens=500)))
    body = fake.chat_requests[-1].json
    assert body["max_tokens"] == 500
    assert "max_completion_tokens" not in body


def test_a_plain_request_carries_no_stream_options():
    body = build_chat_body(hello(), Dialect(completion_tokens_param=True), stream=False)
    assert body["stream"] is False
    assert "stream_options" not in body


async def test_reasoning_deltas_and_finish_reasons(fake):
    fake.reply(["Done", "."], reasoning=["Thinking", " hard"], finish="length")
    result = await collect(make(OPENAI, fake).stream(hello("o3")))
    assert result.reasoning == "Thinking hard"
    assert result.text == "Done."
    assert result.finish == "length"


@pytest.mark.parametrize(
    ("wire", "mapped"),
    [
        ("content_filter", "content_filter"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("something_new", "other"),
    ],
)
async def test_finish_reasons_map_to_the_contract(fake, wire, mapped):
    fake.reply(["x"], finish=wire)
    assert (await collect(make(OPENAI, fake).stream(hello()))).finish == mapped


async def test_stream_cut_cleanly_before_any_finish_is_an_error(fake):
    fake.reply(["partial"], finish=None, usage=None, done=False)
    with pytest.raises(errors.ProtocolError, match="ended before"):
        await collect(make(OPENAI, fake).stream(hello()))


async def test_done_without_usage_still_finishes(fake):
    fake.reply(["ok"], usage=None)
    result = await collect(make(OPENAI, fake).stream(hello()))
    assert result.usage is None
    assert result.finish == "stop"


async def test_quota_429_is_quota_exceeded_not_retried(fake):
    body = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    fake.fail_next(429, body, headers={"retry-after": "0"}, times=3)
    with pytest.raises(errors.QuotaExceededError, match="exceeded your current quota"):
        await collect(make(OPENAI, fake).stream(hello()))
    assert len(fake.requests) == 1  # waiting will not bring quota back


async def test_context_length_error_is_recognised(fake):
    body = {
        "error": {
            "message": "This model's maximum context length is 128000 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    fake.fail_next(400, body)
    with pytest.raises(errors.ContextLengthError, match="maximum context length"):
        await collect(make(OPENAI, fake).stream(hello()))


# ---- images -------------------------------------------------------------------------------------


async def test_gpt_image_returns_decoded_base64_with_its_mime_type(fake):
    result = await images(fake).generate(
        ImageRequest(prompt="a pelican", model="gpt-image-1", n=2, size="1024x1024", quality="high", style="vivid")
    )
    assert [r.data for r in result] == [PNG_1X1, PNG_1X1]
    assert {r.mime_type for r in result} == {"image/png"}
    sent = fake.requests[-1]
    assert sent.path == "/v1/images/generations"
    assert sent.headers["authorization"] == f"Bearer {OPENAI.key}"
    assert sent.json == {"model": "gpt-image-1", "prompt": "a pelican", "n": 2, "size": "1024x1024", "quality": "high"}


async def test_dalle_url_answer_is_downloaded_without_the_key(fake):
    fake.image_mode = "url"
    fake.image_bytes = JPEG_BYTES
    result = await images(fake).generate(
        ImageRequest(prompt="an otter", model="dall-e-3", size="1792x1024", quality="hd", style="natural")
    )
    assert len(result) == 1
    assert result[0].data == JPEG_BYTES  # fetched, not mistaken for base64
    assert result[0].mime_type == "image/jpeg"  # from the bytes, not the URL's .png
    assert result[0].revised_prompt == "A detailed rendering of: an otter"
    generation, download = fake.requests
    assert generation.json["style"] == "natural"
    assert generation.json["response_format"] == "b64_json"
    assert download.path == "/files/generated-0.png"
    assert "authorization" not in download.headers


async def test_image_errors_are_translated(fake, caplog):
    debug_logging(caplog)
    fake.fail_next(
        400,
        {
            "error": {
                "message": "Your request was rejected by the safety system.",
                "type": "image_generation_user_error",
                "code": "content_policy_violation",
            }
        },
    )
    with pytest.raises(errors.ContentFilterError, match="safety system") as caught:
        await images(fake).generate(ImageRequest(prompt="bad", model="gpt-image-1"))
    assert_no_secret(OPENAI.key, caplog.text, str(caught.value), repr(caught.value))


async def test_image_generation_needs_a_key(fake):
    provider = create_image_provider("OPENAI", api_key=None, base_url=fake.base_url)
    with pytest.raises(errors.AuthenticationError):
        await provider.generate(ImageRequest(prompt="x", model="gpt-image-1"))
    assert fake.requests == []


async def test_validate_key_uses_the_model_list(fake):
    await make(OPENAI, fake).validate_key()
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/v1/models")]


async def test_validate_key_without_a_key_fails_before_any_request(fake):
    with pytest.raises(errors.AuthenticationError):
        await make(OPENAI, fake, key=None).validate_key()
    assert fake.requests == []


# ---- wire robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 17, 256])
async def test_events_split_at_any_byte_offset_parse_the_same(fake, size):
    raw = fixture_bytes("openai_chat_stream_text.sse")
    fake.chunks = [raw[i : i + size] for i in range(0, len(raw), size)]  # cuts inside "da|ta: " and JSON
    result = await collect(make(OPENAI, fake).stream(hello()))
    assert result.text == OPENAI_TEXT
    assert (result.usage.input_tokens, result.usage.output_tokens) == OPENAI_USAGE


async def test_multibyte_characters_split_across_writes_and_crlf_framing(fake):
    fake.reply(["héllo ", "🐦 wörld"])
    raw = b"".join(fake.chunks).replace(b"\n", b"\r\n")
    fake.chunks = [raw[i : i + 1] for i in range(len(raw))]
    result = await collect(make(OPENAI, fake).stream(hello()))
    assert result.text == "héllo 🐦 wörld"


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x.png", "http://metadata.google.internal/x"]
)
async def test_an_image_url_on_a_link_local_or_metadata_host_is_never_fetched(fake, url):
    fake.fail_next(200, {"created": 1, "data": [{"url": url}]})
    with pytest.raises(errors.ProtocolError, match="link-local"):
        await images(fake).generate(ImageRequest(prompt="x", model="dall-e-3"))
    assert len(fake.requests) == 1
