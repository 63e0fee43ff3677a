"""The OpenAI Chat Completions dialect, shared by every plugin that speaks it.

OpenAI, xAI Grok, Gab AI, OpenRouter and generic OpenAI-compatible servers (llama.cpp, vLLM,
LM Studio) differ in small ways: which token-limit parameter a model takes, how strictly a stream
must end, what an error body looks like, what a model listing carries. A ``Dialect`` names those
differences; the pure mapping functions (``mapping``) and the provider classes (``providers``) do
the rest, so each plugin is a few lines of configuration plus its own quirks: request fields of its
own through ``OpenAIDialectProvider.chat_body``, state to hand back next turn through ``turn_state``
(a ``TurnState``, fed every chunk). Plugins import everything from ``providers.openai_format``.

Parsing is tolerant in the ways real servers need (PROTOCOLS.md §8): ``choices`` may be missing,
null or empty on any chunk; usage may ride on any chunk; SSE comments are skipped; a ``data:`` JSON
with an ``error`` key is an error wherever it appears.

Tools (``tools``, ``tool_stream``): the request's tools and ``tool_choice`` and the turns that go back
are mapped for both APIs in one place, and the calls a stream sends in pieces are assembled there and
handed on once each, when their arguments are complete.

May import: ``providers.openai_format.images``, ``providers.openai_format.mapping``,
``providers.openai_format.providers``.
"""

from providers.openai_format.images import build_image_body, sniff_image_mime
from providers.openai_format.mapping import (
    Dialect,
    build_chat_body,
    build_messages,
    chunk_events,
    chunk_finish,
    completion_events,
    map_finish_reason,
    models_from,
    stream_error,
    translate_error,
    usage_from,
    uses_completion_tokens,
)
from providers.openai_format.providers import OpenAIDialectImageProvider, OpenAIDialectProvider, TurnState

__all__ = [
    "Dialect",
    "OpenAIDialectImageProvider",
    "OpenAIDialectProvider",
    "TurnState",
    "build_chat_body",
    "build_image_body",
    "build_messages",
    "chunk_events",
    "chunk_finish",
    "completion_events",
    "map_finish_reason",
    "models_from",
    "sniff_image_mime",
    "stream_error",
    "translate_error",
    "usage_from",
    "uses_completion_tokens",
]
