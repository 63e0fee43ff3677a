"""Any server speaking the OpenAI Chat Completions dialect (llama.cpp, vLLM, LM Studio, LiteLLM)."""

from __future__ import annotations

from providers.openai_format import Dialect, OpenAIDialectProvider


class OpenAICompatibleProvider(OpenAIDialectProvider):
    """The base URL is required (the manifest has no default); the key is optional and no
    Authorization header is sent without one. Servers differ, so parsing is at its most
    tolerant: no ``[DONE]``, no usage and either common error shape are all fine.

    No read timeout by default: a local server on a CPU can think for minutes before the first
    token and sends nothing meanwhile. The stop button ends a generation that never answers."""

    dialect = Dialect(lenient_end=True)
    default_read_timeout = None
