"""How far a ``message.send`` travels: the chat modules whose functions run, and the module boundaries
crossed, from the consumer's ``receive`` to the moment the upstream request leaves (the transport's
``handle_async_request``). Measured, not read off the imports: every Python call on the event loop's
thread and on the database thread is recorded while one send goes through the ASGI application.

``-s`` shows the path the test measured.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import pytest
from channels.db import database_sync_to_async

from tests.chat.conftest import TERMINAL, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)

MAX_CHAT_MODULES = 8
START = ("qtap_site.chat.consumers", "receive")
END = ("providers.transport", "handle_async_request")


def _project(module: str) -> bool:
    return module.startswith(("qtap_site.", "providers.", "plugins."))


@dataclass
class SendPath:
    """What one send ran between ``START`` and ``END``."""

    started: bool = False
    ended: bool = False
    chat_modules: list[str] = field(default_factory=list)  # in the order they were first entered
    boundaries: list[tuple[str, str]] = field(default_factory=list)  # distinct caller → callee, in order
    # Calls the consumer made into other modules of the project (each hands control out and gets it back).
    # A coroutine resumed counts once: its frame is the same.
    handoffs: list[str] = field(default_factory=list)
    _handed: set[FrameType] = field(default_factory=set, repr=False)

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or self.ended:
            return
        module = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back is not None else ""
        if not self.started:
            if (module, frame.f_code.co_name) != START:
                return
            self.started = True
        if (module, frame.f_code.co_name) == END:
            self.ended = True
        if module.startswith("qtap_site.chat.") and module not in self.chat_modules:
            self.chat_modules.append(module)
        # A coroutine resumed by the event loop has the loop as its caller: that is no boundary of ours.
        if _project(module) and _project(caller) and caller != module and (caller, module) not in self.boundaries:
            self.boundaries.append((caller, module))
        if caller == START[0] and module != START[0] and _project(module) and frame not in self._handed:
            self._handed.add(frame)
            self.handoffs.append(f"{module.rsplit('.', 1)[1]}.{frame.f_code.co_name}")


@contextmanager
def recording(path: SendPath) -> Iterator[None]:
    """Record on this thread and on every thread started meanwhile (the database thread is set separately)."""
    sys.setprofile(path.profile)
    threading.setprofile(path.profile)
    try:
        yield
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]


async def trace_one_send(chat: Any, cookie: str) -> SendPath:
    comm, _ = await open_socket(chat.pk, cookie)
    path = SendPath()
    # The database thread already exists: it records once told to (and stops the same way).
    await database_sync_to_async(sys.setprofile)(path.profile)
    try:
        with recording(path):
            await send(comm, {"type": "message.send", "content": "Trace me"})
            await receive_until(comm, *TERMINAL)
    finally:
        await database_sync_to_async(sys.setprofile)(None)
        await comm.disconnect()
    assert path.started and path.ended, "the trace did not see the send reach the upstream request"
    return path


def describe(path: SendPath) -> str:
    def chat(module: str) -> bool:
        return module.startswith("qtap_site.chat.")

    inside = [(a, b) for a, b in path.boundaries if chat(a) and chat(b)]
    out = [(a, b) for a, b in path.boundaries if chat(a) != chat(b)]
    lines = [f"{len(path.chat_modules)} chat modules: {', '.join(m.rsplit('.', 1)[1] for m in path.chat_modules)}"]
    lines.append(f"{len(inside)} boundaries between chat modules:")
    lines += [f"  {a} → {b}" for a, b in inside]
    lines.append(f"{len(out)} between a chat module and providers (either way):")
    lines += [f"  {a} → {b}" for a, b in out]
    lines.append(f"(and {len(path.boundaries) - len(inside) - len(out)} inside providers)")
    lines.append(f"the consumer handed control out {len(path.handoffs)} times: {', '.join(path.handoffs)}")
    return "\n".join(lines)


async def test_a_send_touches_at_most_eight_chat_modules(chat: Any, cookie: str, fake: Any) -> None:
    fake.tokens = ["traced"]
    path = await trace_one_send(chat, cookie)
    print(describe(path))
    assert len(path.chat_modules) <= MAX_CHAT_MODULES, describe(path)
