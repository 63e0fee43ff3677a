"""Imagen image generation through the Google plugin, against the local Gemini API."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from providers import errors
from providers.contract import ImageRequest
from providers.factory import create_image_provider
from tests.fakes.gemini import FakeGemini, error_body
from tests.fakes.samples import FAST_RETRY, assert_no_secret, debug_logging

KEY = "AIzaSyImagen-secret-key-for-tests-0001"
MODEL = "imagen-4.0-generate-001"


@pytest.fixture
def fake():
    with FakeGemini(api_key=KEY) as server:
        yield server


def make_provider(fake: FakeGemini, key: str | None = KEY, name: str = "GOOGLE"):
    provider = create_image_provider(name, api_key=key, base_url=fake.base_url)
    provider.retry = FAST_RETRY
    return provider


async def test_generates_decoded_images_with_the_mime_type_of_the_bytes(fake):
    images = await make_provider(fake).generate(
        ImageRequest(
            prompt="A cute baby sea otter", model=MODEL, n=2, aspect_ratio="16:9", negative_prompt="blur", seed=7
        )
    )

    assert len(images) == 2
    for image in images:
        assert image.mime_type == "image/png"
        assert Image.open(io.BytesIO(image.data)).size == (8, 8)
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", f"/v1beta/models/{MODEL}:predict")
    assert sent.headers["x-goog-api-key"] == KEY and "key=" not in sent.query
    assert sent.json == {
        "instances": [{"prompt": "A cute baby sea otter"}],
        "parameters": {
            "sampleCount": 2,
            "includeRaiReason": True,
            "aspectRatio": "16:9",
            "negativePrompt": "blur",
            "seed": 7,
            "addWatermark": False,
        },
    }


async def test_the_legacy_name_resolves_and_size_becomes_the_nearest_aspect_ratio(fake):
    await make_provider(fake, name="GOOGLE_IMAGEN").generate(ImageRequest(prompt="p", model=MODEL, size="1792x1024"))
    assert fake.requests[-1].json["parameters"] == {"sampleCount": 1, "includeRaiReason": True, "aspectRatio": "16:9"}


async def test_a_mislabelled_image_reports_what_the_bytes_are(fake):
    fake.imagen = "mislabelled"
    [image] = await make_provider(fake).generate(ImageRequest(prompt="p", model=MODEL))
    assert image.mime_type == "image/jpeg"
    assert image.data.startswith(b"\xff\xd8")


async def test_data_that_is_not_an_image_is_refused(fake):
    fake.imagen = "not_image"
    with pytest.raises(errors.ProtocolError, match="not an image"):
        await make_provider(fake).generate(ImageRequest(prompt="p", model=MODEL))


async def test_a_filtered_prompt_is_a_content_filter_error_with_the_reason(fake):
    fake.imagen = "filtered"
    with pytest.raises(errors.ContentFilterError, match="filtered for violating the policy"):
        await make_provider(fake).generate(ImageRequest(prompt="p", model=MODEL))


async def test_errors(fake):
    with pytest.raises(errors.AuthenticationError, match="API key not valid"):
        await make_provider(fake, key="AIzaSyWrong-imagen-key-0000000000").generate(
            ImageRequest(prompt="p", model=MODEL)
        )
    with pytest.raises(errors.ModelNotFoundError):
        await make_provider(fake).generate(ImageRequest(prompt="p", model="imagen-9"))
    fake.fail_next(429, error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded for imagen"), times=3)
    with pytest.raises(errors.RateLimitError, match="Quota exceeded"):
        await make_provider(fake).generate(ImageRequest(prompt="p", model=MODEL))
    fake.fail_next(503, error_body(503, "UNAVAILABLE", "The model is overloaded."))
    assert len(await make_provider(fake).generate(ImageRequest(prompt="p", model=MODEL))) == 1


async def test_missing_key_fails_before_any_request(fake):
    with pytest.raises(errors.AuthenticationError):
        await make_provider(fake, key=None).generate(ImageRequest(prompt="p", model=MODEL))
    assert fake.requests == []


async def test_the_key_never_leaks(fake, caplog):
    debug_logging(caplog)
    provider = make_provider(fake)
    await provider.generate(ImageRequest(prompt="p", model=MODEL))
    fake.fail_next(403, error_body(403, "PERMISSION_DENIED", "denied"))
    with pytest.raises(errors.PermissionDeniedError) as caught:
        await provider.generate(ImageRequest(prompt="p", model=MODEL))
    assert "image request model=" in caplog.text and "permission error: denied" in caplog.text
    assert_no_secret(KEY, caplog.text, repr(provider), str(caught.value), repr(caught.value))
