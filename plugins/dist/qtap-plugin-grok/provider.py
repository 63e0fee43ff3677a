"""xAI Grok: the Responses API by default, the OpenAI-compatible Chat Completions when a profile asks for it."""

from __future__ import annotations

from providers import errors
from providers.openai_format import Dialect
from providers.openai_format.responses_provider import ResponsesProvider


class GrokProvider(ResponsesProvider):
    """xAI's quirks: a bad key is HTTP 400 with ``{"code", "error"}`` (handled by the shared error
    mapping), reasoning tokens are counted outside Chat Completions' ``completion_tokens``, and the key is
    checked with ``GET /api-key``, which also says whether the key or its team is blocked. On the Responses
    API the encrypted reasoning items (which may have no ``id``) go back unchanged in their place; the
    manifest's rules say which models take an effort (grok-3-mini, grok-4.3 on) and which refuse ``stop``."""

    dialect = Dialect(reasoning_outside_completion=True, reasoning_effort=True)

    async def validate_key(self) -> None:
        self.require_key()
        info = await self.get_json("api-key")
        if not isinstance(info, dict):
            raise errors.ProtocolError(self.provider, "the api-key answer was not an object")
        for flag, meaning in (
            ("api_key_disabled", "this API key is disabled"),
            ("api_key_blocked", "this API key is blocked"),
            ("team_blocked", "the team owning this API key is blocked"),
        ):
            if info.get(flag):
                raise errors.PermissionDeniedError(self.provider, meaning, status=200)
