"""OpenRouter: many providers' models behind one OpenAI-dialect API, with per-request cost."""

from __future__ import annotations

import os

from providers import errors
from providers.openai_format import Dialect, OpenAIDialectProvider

# qtap's own default address; operators set QTAP_OPENROUTER_REFERER to their site's public URL.
DEFAULT_REFERER = "http://127.0.0.1:8000/"
DEFAULT_TITLE = "qtap"


def _setting(name: str, default: str) -> str:
    """A Django setting when Django is configured, else the environment, else the default.

    The plugin must work without Django (scripts, benchmarks), so Django is only consulted."""
    try:
        from django.conf import settings

        if settings.configured:
            value = getattr(settings, name, None)
            if value:
                return str(value)
    except ImportError:  # pragma: no cover - Django is always installed alongside qtap
        pass
    return os.environ.get(name) or default


class OpenRouterProvider(OpenAIDialectProvider):
    """Sends the attribution headers (``HTTP-Referer``, ``X-Title`` and its newer spelling
    ``X-OpenRouter-Title``), reads ``usage.cost`` into ``Usage.cost``, lists models with prices
    and context length, and checks the key with ``GET /key`` (``/models`` is public, so it
    proves nothing about a key). 402 means the account is out of credits: QuotaExceededError."""

    dialect = Dialect()

    def extra_headers(self) -> dict[str, str]:
        title = _setting("QTAP_OPENROUTER_TITLE", DEFAULT_TITLE)
        return {
            "HTTP-Referer": _setting("QTAP_OPENROUTER_REFERER", DEFAULT_REFERER),
            "X-Title": title,
            "X-OpenRouter-Title": title,
        }

    async def validate_key(self) -> None:
        self.require_key()
        info = await self.get_json("key")
        if not isinstance(info, dict) or not isinstance(info.get("data"), dict):
            raise errors.ProtocolError(self.provider, "the key answer had no data object")
