"""OpenAI: the Responses API by default, Chat Completions when a profile asks for it."""

from __future__ import annotations

from providers.openai_format import Dialect
from providers.openai_format.responses_provider import ResponsesProvider


class OpenAIProvider(ResponsesProvider):
    """On Chat Completions, reasoning models (o1, o3, o4, gpt-5) take ``max_completion_tokens``; the stream
    must end with a finish reason or ``[DONE]`` (on the Responses API, with ``response.completed``), so a cut
    connection is an error, never a short reply. On the Responses API each function tool says
    ``strict: false``: OpenAI reads a missing ``strict`` as true and holds the schema to its strict subset
    (every property required, no extra ones), which the schemas tools bring are rarely written in."""

    dialect = Dialect(completion_tokens_param=True, reasoning_effort=True, tool_strict=False)
