"""The bytes-level SSE parser yields exactly what httpx_sse yields, however the bytes are split."""

from __future__ import annotations

import httpx
import pytest
from httpx_sse import SSEError
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.sse import SSEParser, check_content_type


def reference(body: bytes) -> list[tuple[str, str, str, int | None]]:
    """httpx_sse's own line splitting and decoding, all at once."""
    lines_decoder, decoder = SSELineDecoder(), SSEDecoder()
    text = body.decode("utf-8", "replace")
    lines = (lines_decoder.decode(text) if text else []) + lines_decoder.flush()
    events = [decoder.decode(line.rstrip("\n")) for line in lines]
    return [(e.event, e.data, e.id, e.retry) for e in events if e is not None]


def parsed(chunks: list[bytes]) -> list[tuple[str, str, str, int | None]]:
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)] + parser.close()
    return [(e.event, e.data, e.id, e.retry) for e in events]


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(body)) for c in cuts})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True) if body[a:b]]


OPENAI = (
    b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
    b": keep-alive\n\n"
    b'data: {"choices":[{"delta":{"content":"lo"}}]}\r\n\r\n'
    b"event: message_stop\rdata: a\rdata: b\r\rid: 7\nretry: 150\ndata: x\n\n"
    b"data: [DONE]\n\n"
)


def test_an_openai_stream_split_everywhere_gives_the_same_events() -> None:
    expected = reference(OPENAI)
    assert [e[1] for e in expected][:2] == [
        '{"choices":[{"delta":{"content":"Hel"}}]}',
        '{"choices":[{"delta":{"content":"lo"}}]}',
    ]
    for cut in range(len(OPENAI) + 1):
        assert parsed(split(OPENAI, [cut])) == expected, cut
    assert parsed([OPENAI[i : i + 1] for i in range(len(OPENAI))]) == expected


def test_multibyte_text_split_inside_a_character() -> None:
    body = "data: héllo ✓ 日本\n\n".encode()
    for cut in range(len(body) + 1):
        assert parsed(split(body, [cut])) == [("message", "héllo ✓ 日本", "", None)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"data: a", b"data:b", b"data", b"event: e", b"id: 1", b"id: 2\x00", b"retry: 5", b"retry: x",
             b": c", b"", b"\xc3\xa9", b"other: z", b"\n", b"\r", b"\r\n", b"data: {\"k\": 1}"]
        ),
        max_size=40,
    ),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)  # fmt: skip
def test_any_stream_any_split(parts: list[bytes], cuts: list[int]) -> None:
    body = b"".join(parts)
    assert parsed(split(body, cuts)) == reference(body)


def test_a_body_that_is_not_an_event_stream_is_refused() -> None:
    check_content_type(httpx.Response(200, headers={"content-type": "text/event-stream; charset=utf-8"}))
    with pytest.raises(SSEError, match="application/json"):
        check_content_type(httpx.Response(200, headers={"content-type": "application/json"}))
