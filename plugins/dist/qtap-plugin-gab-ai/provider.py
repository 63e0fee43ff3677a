"""Gab AI through its OpenAI-compatible API."""

from __future__ import annotations

from providers.openai_format import Dialect, OpenAIDialectProvider


class GabAIProvider(OpenAIDialectProvider):
    """Gab's streams are not documented to end with ``[DONE]`` or to carry usage, so a stream
    that ends cleanly counts as finished. A connection cut mid-chunk is still an error.
    402 (credits exhausted) is a QuotaExceededError through the shared mapping."""

    dialect = Dialect(lenient_end=True)
