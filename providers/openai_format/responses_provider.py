"""The provider class of the OpenAI Responses API, with Chat Completions as the profile's opt-in.

Which API a request takes is the profile parameter ``api`` (``request.options["api"]``), one of the
manifest's ``apis``; without it, the first of them. Gateways that only speak Chat Completions get
``api: chat_completions``, whatever their base URL.

May import: ``providers.contract``, ``providers.errors``, ``providers.openai_format.mapping``,
``providers.openai_format.providers``, ``providers.openai_format.responses``, ``providers.streams``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import ClassVar

from providers import errors
from providers.contract import ChatRequest, StreamEvent
from providers.openai_format.mapping import loads
from providers.openai_format.providers import OpenAIDialectProvider
from providers.openai_format.responses import ResponsesStream, build_responses_body
from providers.streams import drain, iter_sse


class ResponsesProvider(OpenAIDialectProvider):
    """``POST {base}/responses``, streamed; ``api: chat_completions`` takes the dialect's own path."""

    responses_path: ClassVar[str] = "responses"

    def api_for(self, request: ChatRequest) -> str:
        chosen = request.options.get("api")
        if chosen is None:
            return self.config.apis[0] if self.config.apis else "chat_completions"
        return str(chosen)

    def _events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        if self.api_for(request) == "chat_completions":
            return super()._events(request)
        return self._responses_events(request)

    async def _responses_events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        api = self.api_for(request)
        if api != "responses":
            offered = ", ".join(self.config.apis) or "chat_completions"
            raise errors.InvalidRequestError(self.provider, f"{self.config.display_name} speaks {offered}, not {api!r}")
        body = build_responses_body(request, self.config, tool_strict=self.dialect.tool_strict)
        headers = {"Accept": "text/event-stream", **self.extra_headers()}
        state = ResponsesStream(self.provider, request.model)
        async with self.open("POST", self.responses_path, json_body=body, headers=headers) as response:
            sse = iter_sse(response, provider=self.provider)
            async for event in sse:
                data = event.data
                if not data.strip():
                    continue
                if data.startswith("[DONE]"):  # OpenRouter's Responses stream adds one; OpenAI's has none
                    break
                for item in state.feed(loads(data, self.provider)):
                    yield item
                if state.finished:
                    break
            await drain(sse)  # the rest of the body, so the connection goes back to the pool
        if not state.finished:
            raise errors.ProtocolError(self.provider, "the stream ended before the response completed")
