"""Two sends racing in two Daphne processes over PostgreSQL cannot both pass the last tokens of a
budget: the user's row is locked for the check and the reservation (``budgets.guard``), so the second
process reads the first one's reply in flight. Several users race at once (without the lock, one race
in three let both sends through). Runs in the scaled run (PostgreSQL + Redis)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connections, transaction
from django.utils import timezone

from qtap_site.budgets import guard, services
from qtap_site.chat.models import Message
from qtap_site.chat.services import chat_create
from tests.budgets.conftest import reply
from tests.support.data import ChatSetup, chat_setup, db, message_row
from tests.support.markers import scaled_only
from tests.support.processes import DaphneProcess, daphne_processes
from tests.support.scripted_openai import Script, ScriptedOpenAI
from tests.support.wsclient import WSClient, session_cookie

pytestmark = [*scaled_only, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def pair(chat_on_fake: ChatSetup) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    with daphne_processes(2) as (a, b):
        yield a, b


RACERS = 4  # users racing at once: each race is a chance for a missing lock to show


@dataclass
class Racer:
    cookie: str
    chats: tuple[int, int]


def near_the_limit(user: Any, base_url: str, setup: ChatSetup | None = None) -> Racer:
    """90 of the user's 100 daily tokens spent, in one reply, and two chats."""
    setup = setup or chat_setup(user, base_url)
    reply(setup.chat, input_tokens=60, output_tokens=30)
    services.budget_set(user=user, period="day", max_cost=None, max_tokens=100)
    second = chat_create(user=user, profile=setup.profile)
    return Racer(session_cookie(user), (setup.chat.pk, second.pk))


@pytest.fixture
def racers(chat_on_fake: ChatSetup, scripted_openai: ScriptedOpenAI, django_user_model: Any) -> list[Racer]:
    found = [near_the_limit(chat_on_fake.user, scripted_openai.base_url, chat_on_fake)]
    for n in range(1, RACERS):
        user = django_user_model.objects.create_user(username=f"racer{n}", password="a long enough password")
        found.append(near_the_limit(user, scripted_openai.base_url))
    return found


def test_two_processes_racing_cannot_both_pass_the_last_tokens(
    racers: list[Racer], pair: tuple[DaphneProcess, DaphneProcess], scripted_openai: ScriptedOpenAI
) -> None:
    a, b = pair
    scripted_openai.script = Script(tokens=30, delay=0.02)  # the first reply is still streaming

    async def race(racer: Racer) -> list[dict[str, Any]]:
        tab_a = await WSClient.open(a.ws_url(f"/ws/chats/{racer.chats[0]}/"), cookie=racer.cookie)
        tab_b = await WSClient.open(b.ws_url(f"/ws/chats/{racer.chats[1]}/"), cookie=racer.cookie)
        for tab in (tab_a, tab_b):
            await tab.expect("chat.state")
        await asyncio.gather(
            tab_a.send({"type": "message.send", "content": "from A"}),
            tab_b.send({"type": "message.send", "content": "from B"}),
        )
        seen = await asyncio.gather(tab_a.follow(timeout=60), tab_b.follow(timeout=60))
        await tab_a.close()
        await tab_b.close()
        return [generation.terminal for generation in seen if generation.terminal is not None]

    async def scenario() -> list[list[dict[str, Any]]]:
        return list(await asyncio.gather(*(race(racer) for racer in racers)))

    for ends in asyncio.run(scenario()):
        assert sorted(end["type"] for end in ends) == ["generation.error", "generation.finished"], ends
        refused = next(end for end in ends if end["type"] == "generation.error")
        assert refused["code"] == "budget_exceeded"
        assert "daily token budget of 100 tokens" in refused["message"]
        row = asyncio.run(db(message_row, refused["message_id"]))
        assert (row.status, row.error_code) == ("error", "budget_exceeded")
    assert len(scripted_openai.chat_requests()) == RACERS  # one per user: the refused sends reached no provider


def placeholder(chat_id: int) -> Message:
    """A reply's "streaming" row, as ``sending`` saves it before the check."""
    return Message.objects.create(
        chat_id=chat_id, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, heartbeat_at=timezone.now()
    )


def test_a_second_connection_waits_for_the_first_check_and_sees_its_reply_in_flight(
    chat_on_fake: ChatSetup, scripted_openai: ScriptedOpenAI
) -> None:
    """The race made certain: the first send's transaction stays open after its check; the second,
    on another connection, must wait for the lock, then count the first reply in flight. (Without the
    lock it reads at once, cannot see the uncommitted reply, and passes too.)"""
    racer = near_the_limit(chat_on_fake.user, scripted_openai.base_url, chat_on_fake)
    user_id, checked, found = chat_on_fake.user.pk, threading.Event(), {}

    def send(name: str, chat_id: int, hold: float) -> None:
        try:
            if name == "second":
                assert checked.wait(10)
            started = time.monotonic()
            with transaction.atomic():
                reply_row = placeholder(chat_id)
                found[name] = guard.refusals([(user_id, reply_row.pk)], timezone.now())
                found[f"{name} waited"] = time.monotonic() - started
                checked.set()
                time.sleep(hold)  # the first keeps its transaction (and the lock) a while
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=send, args=("first", racer.chats[0], 1.0)),
        threading.Thread(target=send, args=("second", racer.chats[1], 0.0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert found["first"] == {}
    [(code, words)] = found["second"].values()
    assert code == "budget_exceeded" and "nearly used up (90 tokens spent)" in words
    assert found["second waited"] >= 0.8  # it waited for the first transaction to end
