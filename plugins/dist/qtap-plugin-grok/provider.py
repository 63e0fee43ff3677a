"""xAI Grok through its OpenAI-compatible API."""

from __future__ import annotations

from providers import errors
from providers.openai_format import Dialect, OpenAIDialectProvider


class GrokProvider(OpenAIDialectProvider):
    """xAI's quirks: a bad key is HTTP 400 with ``{"code", "error"}`` (handled by the shared error
    mapping), reasoning tokens are counted outside ``completion_tokens``, and the key is checked
    with ``GET /api-key``, which also says whether the key or its team is blocked."""

    dialect = Dialect(reasoning_outside_completion=True)

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
