"""Frames whose values no database can hold: lone surrogates in text, ids outside a 64-bit key, JSON
nested past the parser's depth. Each is answered ``bad_request`` naming the field and why (or
``not_found`` for a well-formed id that names nothing), nothing is saved, nothing is logged above INFO,
and the socket stays open for the next frame."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.support.data import ChatSetup, chat_messages, db
from tests.support.wsclient import InProcessTab

pytestmark = pytest.mark.django_db(transaction=True)

BIGGEST_ID = 2**63 - 1  # the largest key a 64-bit integer column holds (SQLite INTEGER, PostgreSQL bigint)
LONE = "\ud800"  # json.dumps writes it as the escape "\ud800", which json.loads turns back into a lone surrogate

# (frame, the field the answer must name); each names the bound too
OUT_OF_RANGE = [
    ({"type": "message.send", "content": "hi", "profile_id": 2**63}, "profile_id"),
    ({"type": "message.send", "content": "hi", "profile_id": 2**64}, "profile_id"),
    ({"type": "message.send", "content": "hi", "attachments": [2**64]}, "attachments"),
    ({"type": "message.send", "content": "hi", "attachments": [1, 2**63]}, "attachments"),
    ({"type": "message.regenerate", "message_id": 2**63}, "message_id"),
    ({"type": "message.regenerate", "message_id": 5, "profile_id": 2**64}, "profile_id"),
    ({"type": "generation.stop", "message_id": 2**64}, "message_id"),
    ({"type": "image.generate", "prompt": "a cat", "image_profile_id": 2**63}, "image_profile_id"),
]
SURROGATES = [
    ({"type": "message.send", "content": LONE}, "content"),
    ({"type": "message.send", "content": f"ok {LONE} ok"}, "content"),
    ({"type": "message.send", "content": "hi", "client_msg_id": f"m-{LONE}"}, "client_msg_id"),
    ({"type": "message.send", "content": "\udfff trailing half"}, "content"),
    ({"type": "image.generate", "prompt": f"cat {LONE}"}, "prompt"),
    ({"type": "image.generate", "prompt": "cat", "size": LONE}, "size"),
    ({"type": "image.generate", "prompt": "cat", "aspect_ratio": LONE}, "aspect_ratio"),
    ({"type": "image.generate", "prompt": "cat", "quality": LONE}, "quality"),
    ({"type": "image.generate", "prompt": "cat", "style": LONE}, "style"),
]
NESTED = [
    "[" * 100_000,
    '{"type": "ping", "extra": ' + "[" * 50_000 + "]" * 50_000 + "}",
    '{"type": "message.send", "content": ' + '{"a": ' * 20_000 + "1" + "}" * 20_000 + "}",
]


def loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records above INFO, or carrying a traceback: what a client must not be able to cause."""
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno > logging.INFO or r.exc_info is not None
    ]


async def answer_to(tab: InProcessTab, frame: dict[str, Any] | str) -> dict[str, Any]:
    """Send a frame, read its answer, and check the socket still works (a ping gets its pong)."""
    await tab.send(frame if isinstance(frame, str) else json.dumps(frame))
    answer = await tab.recv(timeout=5)
    await tab.send({"type": "ping"})
    assert await tab.recv(timeout=5) == {"type": "pong"}, f"the socket stopped answering after {answer}"
    return answer


@pytest.fixture
async def tab(chat_on_fake: ChatSetup, alice_cookie: str) -> Any:
    opened = await InProcessTab.open(chat_on_fake.chat.pk, cookie=alice_cookie)
    await opened.expect("chat.state")
    yield opened
    await opened.close()


@pytest.mark.parametrize(("frame", "field"), OUT_OF_RANGE, ids=lambda v: json.dumps(v)[:60])
async def test_an_id_outside_a_64_bit_key_is_a_bad_request(
    tab: InProcessTab, chat_on_fake: ChatSetup, caplog: pytest.LogCaptureFixture, frame: dict[str, Any], field: str
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await answer_to(tab, frame)
    assert answer["type"] == "error" and answer["code"] == "bad_request", answer
    assert field in answer["message"] and str(BIGGEST_ID) in answer["message"], answer
    assert loud(caplog) == []
    assert await db(chat_messages, chat_on_fake.chat.pk) == []


@pytest.mark.parametrize(("frame", "field"), SURROGATES, ids=lambda v: json.dumps(v)[:60])
async def test_text_with_a_lone_surrogate_is_a_bad_request(
    tab: InProcessTab, chat_on_fake: ChatSetup, caplog: pytest.LogCaptureFixture, frame: dict[str, Any], field: str
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await answer_to(tab, frame)
    assert answer["type"] == "error" and answer["code"] == "bad_request", answer
    assert field in answer["message"] and "surrogate" in answer["message"], answer
    assert loud(caplog) == []
    assert await db(chat_messages, chat_on_fake.chat.pk) == []


@pytest.mark.parametrize("text", NESTED, ids=["array", "ping-extra", "object-content"])
async def test_json_nested_too_deep_is_a_bad_request(
    tab: InProcessTab, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await answer_to(tab, text)
    assert answer["type"] == "error" and answer["code"] == "bad_request", answer
    assert "nested" in answer["message"], answer
    assert loud(caplog) == []


async def test_the_largest_well_formed_id_that_names_nothing_is_not_found(
    tab: InProcessTab, chat_on_fake: ChatSetup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for frame in (
        {"type": "message.send", "content": "hi", "profile_id": BIGGEST_ID},
        {"type": "message.send", "content": "hi", "attachments": [BIGGEST_ID]},
        {"type": "message.regenerate", "message_id": BIGGEST_ID},
        {"type": "image.generate", "prompt": "a cat", "image_profile_id": BIGGEST_ID},
    ):
        answer = await answer_to(tab, frame)
        assert answer["type"] == "error" and answer["code"] == "not_found", (frame, answer)
    assert loud(caplog) == []
    assert await db(chat_messages, chat_on_fake.chat.pk) == []


async def test_after_the_bad_frames_a_good_send_with_real_astral_text_goes_through(
    tab: InProcessTab, chat_on_fake: ChatSetup, caplog: pytest.LogCaptureFixture
) -> None:
    """The control: a surrogate *pair* in JSON is one real character (an emoji), not a lone half."""
    caplog.set_level(logging.DEBUG)
    for frame, _field in (*OUT_OF_RANGE[:2], *SURROGATES[:2]):
        assert (await answer_to(tab, frame))["code"] == "bad_request"
    await tab.send({"type": "message.send", "content": "smile \U0001f600"})
    generation = await tab.follow(timeout=20)
    assert generation.terminal is not None and generation.terminal["type"] == "generation.finished"
    rows = await db(chat_messages, chat_on_fake.chat.pk)
    assert (rows[0].role, rows[0].content) == ("user", "smile \U0001f600")
    assert loud(caplog) == []


async def test_a_chat_id_outside_a_64_bit_key_is_not_found(alice_cookie: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tab = await InProcessTab.open(2**64, cookie=alice_cookie)
    output = await tab.communicator.receive_output(5)
    assert output == {"type": "websocket.close", "code": 4404}
    assert loud(caplog) == []
