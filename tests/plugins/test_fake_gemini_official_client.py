"""The local Gemini API is checked against the official ``google-genai`` client: it must read the
same text, thoughts and usage from the fake's ``alt=sse`` stream, page through the recorded model
list, and see the real error shapes."""

from __future__ import annotations

import base64

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.fakes.gemini import (
    RECORDED_MODEL,
    THINKING_MODEL,
    FakeGemini,
    error_body,
    recorded_text,
    signed_parts,
    sse_recorded_chunks,
)
from tests.fakes.stream_faults import StreamFault

KEY = "AIzaSyOfficial-client-check-000000000001"


@pytest.fixture
def fake():
    with FakeGemini(api_key=KEY) as server:
        yield server


def client(fake: FakeGemini, key: str = KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fake.origin))


async def test_generate_content_stream_reads_text_thoughts_and_usage(fake):
    text, thoughts, usage = "", "", None
    stream = await client(fake).aio.models.generate_content_stream(model=RECORDED_MODEL, contents="Name a pelican")
    async for chunk in stream:
        for part in chunk.candidates[0].content.parts or []:
            if part.thought:
                thoughts += part.text or ""
            else:
                text += part.text or ""
        usage = chunk.usage_metadata
        finish = chunk.candidates[0].finish_reason

    assert (text, thoughts) == recorded_text()
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (11, 2, 291)
    assert finish == types.FinishReason.STOP
    sent = fake.requests[-1]
    assert sent.query == "alt=sse" and sent.headers["x-goog-api-key"] == KEY


async def test_the_v1beta_path_the_plugin_uses_reads_the_same(fake):
    options = types.HttpOptions(base_url=fake.origin, api_version="v1beta")
    sdk = genai.Client(api_key=KEY, http_options=options)
    stream = await sdk.aio.models.generate_content_stream(model=RECORDED_MODEL, contents="Name a pelican")
    texts = [chunk.text async for chunk in stream]
    assert "Scoop" in texts
    assert fake.requests[-1].path == f"/v1beta/models/{RECORDED_MODEL}:streamGenerateContent"


async def test_safety_finish_and_long_stream(fake):
    fake.reply = "safety"
    chunks = [
        c async for c in await client(fake).aio.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    ]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.SAFETY

    fake.reply, fake.long_tokens = "recorded", 150
    stream = await client(fake).aio.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    assert "".join([c.text async for c in stream]) == "".join(f"w{i} " for i in range(150))


async def test_models_list_pages_through_the_recording(fake):
    pager = await client(fake).aio.models.list()
    names = [model.name async for model in pager]
    assert len(names) == 52  # 50 recorded on page 1, 2 on page 2
    assert names[0] == "models/gemini-2.5-flash" and "models/gemini-test-page-two" in names


async def test_bad_key_and_errors(fake):
    with pytest.raises(genai_errors.ClientError) as caught:
        await client(fake, key="AIzaSyWrong").aio.models.generate_content(model=RECORDED_MODEL, contents="x")
    assert caught.value.code == 400 and "API key not valid" in caught.value.message

    fake.fail_next(503, error_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), times=10)
    with pytest.raises(genai_errors.ServerError) as server_error:
        sdk = genai.Client(
            api_key=KEY,
            http_options=types.HttpOptions(base_url=fake.origin, retry_options=types.HttpRetryOptions(attempts=1)),
        )
        await sdk.aio.models.generate_content(model=RECORDED_MODEL, contents="x")
    assert server_error.value.code == 503


async def test_error_chunk_mid_stream_is_raised_by_the_client(fake):
    fake.stream_fault = StreamFault("error", after=1)
    with pytest.raises(genai_errors.APIError):
        async for _chunk in await client(fake).aio.models.generate_content_stream(model=RECORDED_MODEL, contents="x"):
            pass


async def test_the_recorded_thinking_stream_reads_thoughts_signature_and_usage(fake):
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=2048)
    )
    text, thoughts, signatures, usage = "", "", [], None
    stream = await client(fake).aio.models.generate_content_stream(
        model=THINKING_MODEL, contents="How do I cross the street?", config=config
    )
    async for chunk in stream:
        for part in chunk.candidates[0].content.parts or []:
            if part.thought:
                thoughts += part.text or ""
            else:
                text += part.text or ""
            if part.thought_signature:
                signatures.append(part.thought_signature)
        usage = chunk.usage_metadata

    chunks = sse_recorded_chunks()
    assert (text, thoughts) == recorded_text(chunks)
    assert signatures == [base64.b64decode(p["thoughtSignature"]) for p in signed_parts(chunks)]
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (34, 469, 787)
    assert usage.total_token_count == 34 + 469 + 787
    sent = fake.requests[-1].json["generationConfig"]  # the client writes snake_case; the API takes both
    assert sent["thinkingConfig"] == {"include_thoughts": True, "thinking_budget": 2048}


async def test_a_signature_handed_back_by_the_client_reaches_the_fake_intact(fake):
    recorded = signed_parts(sse_recorded_chunks())[0]
    signature = base64.b64decode(recorded["thoughtSignature"])
    contents = [
        types.Content(role="user", parts=[types.Part(text="How do I cross the street?")]),
        types.Content(role="model", parts=[types.Part(text=recorded["text"], thought_signature=signature)]),
        types.Content(role="user", parts=[types.Part(text="And at night?")]),
    ]
    stream = await client(fake).aio.models.generate_content_stream(model=THINKING_MODEL, contents=contents)
    assert "".join([chunk.text or "" async for chunk in stream]) == recorded_text(sse_recorded_chunks())[0]
    sent = fake.requests[-1].json["contents"][1]["parts"][0]
    assert base64.urlsafe_b64decode(sent.get("thoughtSignature") or sent["thought_signature"]) == signature
