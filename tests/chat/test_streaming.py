"""A reply streamed over the websocket from a local provider server, end to end through the ASGI app."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from qtap_site.chat import delivery
from qtap_site.chat.models import Message
from tests.chat.conftest import TERMINAL, deltas, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


async def test_reply_streams_and_is_saved(chat, cookie, fake, relay_mode):
    fake.tokens = [f"tok{i} " for i in range(40)]
    comm, state = await open_socket(chat.pk, cookie)
    assert state["chat"] == {"id": chat.pk, "title": "", "profile_id": chat.profile_id}
    assert state["messages_tail"] == [] and state["generation"] is None

    await send(comm, {"type": "message.send", "content": "Say hello", "client_msg_id": "c-1"})
    frames = await receive_until(comm, *TERMINAL)
    types = [f["type"] for f in frames]
    assert types[:3] == ["message.created", "message.created", "generation.started"]
    user_msg, assistant_msg = frames[0]["message"], frames[1]["message"]
    assert user_msg["role"] == "user" and user_msg["content"] == "Say hello" and user_msg["client_msg_id"] == "c-1"
    assert assistant_msg["role"] == "assistant" and assistant_msg["parent_id"] == user_msg["id"]
    started = frames[2]
    assert started["message_id"] == assistant_msg["id"]
    assert started["plugin"] == "qtap-plugin-openai" and started["model"] == "gpt-4o-mini"

    text_frames = deltas(frames)
    assert "".join(f["text"] for f in text_frames) == fake.full_text
    assert [f["seq"] for f in text_frames] == list(range(1, len(text_frames) + 1))
    assert types.count("generation.finished") == 1 and "generation.error" not in types
    finished = frames[-1]
    assert finished["type"] == "generation.finished"
    assert finished["finish_reason"] == "stop"
    assert finished["usage"] == {"input_tokens": 11, "output_tokens": 40}
    assert finished["ttft_ms"] is not None and finished["ttft_ms"] >= 0
    assert finished["html"].startswith("<p>tok0 tok1")
    # OpenAI reports no cost: priced from genai-prices for gpt-4o-mini (input and output both > 0).
    assert finished["cost"] is not None and 0 < finished["cost"] < 0.01

    message = await Message.objects.aget(pk=assistant_msg["id"])
    assert message.content == fake.full_text
    assert message.status == "complete" and message.finish_reason == "stop"
    assert (message.input_tokens, message.output_tokens) == (11, 40)
    assert message.cost is not None and float(message.cost) == pytest.approx(finished["cost"])
    assert message.seq == text_frames[-1]["seq"]

    # What the provider was sent: the system prompt, then the user message, with the key.
    body = fake.requests[-1].json
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][-1]["content"] == "Say hello"

    # Nothing is sent after the terminal event.
    await asyncio.sleep(0.05)
    assert await comm.receive_nothing(timeout=0.1)
    await comm.disconnect()


async def test_reasoning_and_text_share_one_seq_counter(chat, cookie, fake):
    fake.reasoning = ["thinking ", "hard"]
    fake.tokens = ["The ", "answer"]
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "Why?"})
    frames = await receive_until(comm, *TERMINAL)
    streamed = [f for f in frames if f["type"] in ("generation.delta", "generation.reasoning")]
    assert [f["seq"] for f in streamed] == list(range(1, len(streamed) + 1))
    assert "".join(f["text"] for f in deltas(frames, "generation.reasoning")) == "thinking hard"
    assert "".join(f["text"] for f in deltas(frames)) == "The answer"
    message = await Message.objects.aget(pk=frames[-1]["message_id"])
    assert message.reasoning == "thinking hard" and message.content == "The answer"
    await comm.disconnect()


async def test_history_is_sent_on_the_next_turn(chat, cookie, fake):
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "First"})
    await receive_until(comm, *TERMINAL)
    await send(comm, {"type": "message.send", "content": "Second"})
    await receive_until(comm, *TERMINAL)
    messages = fake.requests[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("system", "Be brief."),
        ("user", "First"),
        ("assistant", fake.full_text),
        ("user", "Second"),
    ]
    await comm.disconnect()


@pytest.fixture(params=["direct", "channel-layer"])
def relay_mode(request, monkeypatch):
    """Frames reach tabs directly (in-memory layer, one process) or through the channel layer group
    (how they travel between processes with Redis); both paths must behave the same."""
    if request.param == "channel-layer":
        monkeypatch.setattr(delivery, "single_process", lambda: False)
    return request.param


async def test_two_sockets_get_identical_frames(chat, cookie, fake, relay_mode):
    fake.tokens = [f"w{i} " for i in range(60)]
    fake.stream_delay = 0.002
    first, _ = await open_socket(chat.pk, cookie)
    second, _ = await open_socket(chat.pk, cookie)
    await send(first, {"type": "message.send", "content": "Go"})
    a = await receive_until(first, *TERMINAL)
    b = await receive_until(second, *TERMINAL)
    assert deltas(a) == deltas(b)
    assert "".join(f["text"] for f in deltas(b)) == fake.full_text
    await first.disconnect()
    await second.disconnect()


async def test_reconnect_mid_stream_resumes_without_gap_or_duplicate(chat, cookie, fake, relay_mode):
    fake.tokens = [f"p{i} " for i in range(80)]
    fake.stream_delay = 0.01
    first, _ = await open_socket(chat.pk, cookie)
    await send(first, {"type": "message.send", "content": "Long one"})
    early = await receive_until(first, "generation.delta")
    while len(deltas(early)) < 5:
        early.append(await first.receive_json_from(timeout=5))
    await first.disconnect()  # the tab closes; the generation goes on

    second, state = await open_socket(chat.pk, cookie)
    generation = state["generation"]
    assert generation is not None and generation["seq"] >= 5
    assert fake.full_text.startswith(generation["content"])
    rest = await receive_until(second, *TERMINAL)
    later = deltas(rest)
    assert later and later[0]["seq"] == generation["seq"] + 1
    assert [f["seq"] for f in later] == list(range(generation["seq"] + 1, generation["seq"] + 1 + len(later)))
    assert generation["content"] + "".join(f["text"] for f in later) == fake.full_text
    assert rest[-1]["type"] == "generation.finished"
    await second.disconnect()


async def test_closing_the_tab_does_not_stop_the_generation(chat, cookie, fake):
    fake.tokens = [f"t{i} " for i in range(30)]
    fake.stream_delay = 0.01
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "Go on"})
    frames = await receive_until(comm, "generation.started")
    message_id = frames[-1]["message_id"]
    await comm.disconnect()

    async def finished() -> Message:
        while True:
            message = await Message.objects.aget(pk=message_id)
            if message.status != "streaming":
                return message
            await asyncio.sleep(0.05)

    message = await asyncio.wait_for(finished(), timeout=10)
    assert message.status == "complete" and message.content == fake.full_text

    comm, state = await open_socket(chat.pk, cookie)
    assert state["generation"] is None
    assert state["messages_tail"][-1]["content"] == fake.full_text
    assert state["messages_tail"][-1]["status"] == "complete"
    await comm.disconnect()


async def test_regenerate_creates_a_sibling(chat, cookie, fake):
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "Hi"})
    first = await receive_until(comm, *TERMINAL)
    original = first[1]["message"]
    fake.tokens = ["Another ", "take"]
    await send(comm, {"type": "message.regenerate", "message_id": original["id"]})
    second = await receive_until(comm, *TERMINAL)
    created = [f["message"] for f in second if f["type"] == "message.created"]
    assert len(created) == 1 and created[0]["role"] == "assistant"
    assert created[0]["parent_id"] == original["parent_id"]
    assert "".join(f["text"] for f in deltas(second)) == "Another take"
    # The provider saw the conversation up to the user message, not the first reply.
    assert [m["content"] for m in fake.requests[-1].json["messages"]][-1] == "Hi"
    siblings = await database_sync_to_async(
        lambda: list(Message.objects.filter(parent_id=original["parent_id"]).values_list("content", flat=True))
    )()
    assert sorted(siblings) == sorted(["Hello, world!", "Another take"])
    await comm.disconnect()


@pytest.mark.parametrize("owner_answers", [True, False])
async def test_tab_in_another_process_resumes_from_the_owners_snapshot(
    chat, cookie, fake, settings, monkeypatch, owner_answers
):
    """A tab opening where the generation does not run asks the owning process (control group) for
    its exact state; without an answer it falls back to the database checkpoint."""
    settings.QTAP_CHECKPOINT_INTERVAL = 30  # no checkpoint during the test: the database lags behind
    monkeypatch.setattr(delivery, "single_process", lambda: False)
    if not owner_answers:

        async def silent(layer, message):
            return None

        monkeypatch.setattr(delivery, "_answer_sync", silent)
    fake.tokens = [f"m{i} " for i in range(120)]
    fake.stream_delay = 0.01
    first, _ = await open_socket(chat.pk, cookie)
    await send(first, {"type": "message.send", "content": "Long one"})
    early = await receive_until(first, "generation.delta")
    while len(deltas(early)) < 5:
        early.append(await first.receive_json_from(timeout=5))

    # As seen from another process: the generation is not local.
    monkeypatch.setattr(delivery, "local_generation", lambda chat_id: None)
    second, state = await open_socket(chat.pk, cookie)
    generation = state["generation"]
    assert generation is not None
    if owner_answers:
        assert generation["seq"] >= deltas(early)[-1]["seq"] and generation["content"]
    else:
        assert generation == {"message_id": generation["message_id"], "content": "", "reasoning": "", "seq": 0}
    rest = await receive_until(second, *TERMINAL)
    later = deltas(rest)
    seqs = [f["seq"] for f in later]
    if owner_answers:
        assert seqs == list(range(generation["seq"] + 1, generation["seq"] + 1 + len(later)))
        assert generation["content"] + "".join(f["text"] for f in later) == fake.full_text
    else:
        # Best effort: the stream goes on from where it is, after the (old) checkpoint; the gap shows
        # in seq, and the terminal frame's html carries the whole reply.
        assert seqs == sorted(set(seqs)) and seqs[0] > generation["seq"]
        assert fake.full_text.endswith("".join(f["text"] for f in later))
        assert rest[-1]["type"] == "generation.finished" and "m119" in rest[-1]["html"]
    await receive_until(first, *TERMINAL)
    await first.disconnect()
    await second.disconnect()
