"""OpenAI Chat Completions."""

from __future__ import annotations

from providers.openai_format import Dialect, OpenAIDialectProvider


class OpenAIProvider(OpenAIDialectProvider):
    """Reasoning models (o1, o3, o4, gpt-5) take ``max_completion_tokens``; the stream must end
    with a finish reason or ``[DONE]``, so a cut connection is an error, never a short reply."""

    dialect = Dialect(completion_tokens_param=True)
