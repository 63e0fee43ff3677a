"""A send's provider call opened the moment its frame is read, from its chat's plan (``plans``),
beside the send's transaction instead of after it. Nothing of the call is read past its first event
until the transaction has saved the send and built the very same call (``Early.made_for``); a call
the send does not keep is closed unread. The tabs see nothing the database does not hold.

May import: ``batching``, ``plans``, ``sending``; ``qtap_site.budgets.guard``, whether a call
may leave before the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

from providers import contract
from providers.factory import create_llm_provider
from qtap_site.budgets import guard
from qtap_site.chat import plans, sending


@dataclass
class Early:
    """A provider call opened from a plan, and its first event being read."""

    plan: plans.Plan
    request: contract.ChatRequest
    provider: contract.LLMProvider
    events: Any
    first: asyncio.Task[Any]

    def made_for(self, prepared: sending.Prepared) -> bool:
        plan = self.plan
        return (
            prepared.error is None
            and not prepared.tools
            and prepared.request == self.request
            and (prepared.plugin, prepared.api_key, prepared.base_url) == (plan.plugin, plan.api_key, plan.base_url)
        )

    async def close(self) -> None:
        self.first.cancel()
        with contextlib.suppress(BaseException):
            await self.first
        with contextlib.suppress(Exception):
            await close_events(self.events)
        with contextlib.suppress(Exception):
            await self.provider.aclose()


def open_early(send: sending.SendRequest) -> Early | None:
    """Open the send's provider call now, if its chat's plan is fresh and the send's own checks cannot
    refuse it for a reason the plan does not know: a plain message (not an edit, not a regeneration), no
    budget covering the user. Only called when one process serves the site (the runner asks
    ``delivery.single_process`` first: every tab, view and change is then this process's, so its plans
    are current)."""
    plan = plans.fresh(send.chat_id, send.user_id)
    if (
        plan is None
        or send.attachment_ids
        or send.regenerate_id is not None
        or send.edit_id is not None  # another branch than the plan's
        or send.profile_id is not None
        or not send.content.strip()
        or not guard.surely_unbudgeted(send.user_id)
    ):
        return None
    user = contract.Message(role="user", content=send.content)
    request = dataclasses.replace(plan.request, messages=(*plan.request.messages, user))
    provider = create_llm_provider(plan.plugin, api_key=plan.api_key, base_url=plan.base_url)
    events = provider.stream(request)
    first = asyncio.get_running_loop().create_task(_first(events))
    return Early(plan, request, provider, events, first)


async def _first(events: Any) -> Any:
    return await anext(events)


async def close_events(events: Any) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
