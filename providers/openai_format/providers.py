"""The provider classes of the OpenAI dialect: chat (streamed) and image generation.

May import: ``providers.base``, ``providers.clients``, ``providers.contract``, ``providers.errors``,
``providers.openai_format.images``, ``providers.openai_format.mapping``,
``providers.openai_format.tool_stream``, ``providers.openai_format.tools``, ``providers.streams``,
``providers.transport``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncGenerator, Mapping
from typing import Any, ClassVar, Protocol

import httpx

from providers import errors
from providers.base import HTTPProvider
from providers.clients import get_client
from providers.contract import (
    ChatRequest,
    Finish,
    GeneratedImage,
    ImageRequest,
    ModelInfo,
    ProviderState,
    StreamEvent,
    Usage,
)
from providers.openai_format.images import build_image_body, sniff_image_mime
from providers.openai_format.mapping import (
    Dialect,
    build_chat_body,
    chunk_events,
    chunk_finish,
    completion_events,
    loads,
    map_finish_reason,
    models_from,
    translate_error,
    usage_from,
)
from providers.openai_format.tool_stream import ChatToolCalls, finish_with_calls
from providers.openai_format.tools import tool_choice_problem
from providers.streams import drain, iter_sse
from providers.transport import UrlRefused

MAX_IMAGE_DOWNLOAD_BYTES = 64 * 1024 * 1024


class TurnState(Protocol):
    """What a plugin keeps of one reply for the next turn: fed every chunk (or the whole completion),
    asked once at the end; ``None`` means nothing to hand back."""

    def add(self, data: dict[str, Any]) -> None: ...

    def value(self) -> Any: ...


class OpenAIDialectProvider(HTTPProvider):
    """A chat provider speaking the dialect; plugins set ``dialect`` and override the quirks
    (``chat_body`` for request fields of their own, ``turn_state`` for state to hand back)."""

    dialect: ClassVar[Dialect] = Dialect()
    chat_path: ClassVar[str] = "chat/completions"
    models_path: ClassVar[str] = "models"

    def extra_headers(self) -> dict[str, str]:
        return {}

    def translate_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.ProviderError:
        return translate_error(self.provider, status, headers, body)

    def chat_body(self, request: ChatRequest) -> dict[str, Any]:
        """The request body; raises InvalidRequestError (before any request) for what cannot be sent."""
        reasoning = request.reasoning
        if self.dialect.reasoning_effort and reasoning is not None and reasoning.budget_tokens is not None:
            raise errors.InvalidRequestError(
                self.provider, f"The model {request.model!r} takes a reasoning effort, not a thinking budget."
            )
        if problem := tool_choice_problem(request):
            raise errors.InvalidRequestError(self.provider, problem)
        return build_chat_body(request, self.dialect)

    def turn_state(self) -> TurnState | None:
        """A fresh collector of the state this provider needs back next turn (None: it needs none)."""
        return None

    async def _events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body = self.chat_body(request)
        headers = {"Accept": "text/event-stream", **self.extra_headers()}
        state = self.turn_state()
        calls = ChatToolCalls()
        usage: Usage | None = None
        finish: str | None = None
        done = False
        async with self.open("POST", self.chat_path, json_body=body, headers=headers) as response:
            if response.headers.get("content-type", "").startswith("application/json"):
                # Some gateways ignore ``stream: true`` and answer with the whole completion.
                whole = loads(await response.aread(), self.provider)
                for item in completion_events(whole, self.provider, self.dialect):
                    if isinstance(item, Finish) and state is not None:
                        state.add(whole)
                        if (value := state.value()) is not None:
                            yield ProviderState(value)
                    yield item
                return
            sse = iter_sse(response, provider=self.provider)
            async for event in sse:
                if event.data.startswith("[DONE]"):
                    done = True
                    await drain(sse)
                    break
                if not event.data.strip():
                    continue
                data = loads(event.data, self.provider)
                for delta in chunk_events(data, self.provider):
                    yield delta
                if state is not None:
                    state.add(data)
                calls.add(data)
                usage = usage_from(data, self.dialect) or usage
                if ended := chunk_finish(data):
                    finish = ended
                    for call in calls.take():  # the choice is over: its calls' arguments are complete
                        yield call
        if finish is None and not done and not self.dialect.lenient_end:
            raise errors.ProtocolError(self.provider, "the stream ended before a finish reason or [DONE]")
        for call in calls.take():  # a lenient server's stream may end without a finish reason
            yield call
        if state is not None and (value := state.value()) is not None:
            yield ProviderState(value)
        if usage is not None:
            yield usage
        yield Finish(finish_with_calls(map_finish_reason(finish) if finish else "stop", calls.called))

    async def fetch_models(self) -> list[ModelInfo]:
        return models_from(await self.get_json(self.models_path), self.provider)

    async def validate_key(self) -> None:
        """GET /models with the key: free, and it fails with 401 for a bad key."""
        if self.config.requires_api_key:
            self.require_key()
        await self.get_json(self.models_path)

    async def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        async with self.open("GET", path, params=params, headers=self.extra_headers()) as response:
            body = await response.aread()
        return loads(body, self.provider)


class OpenAIDialectImageProvider(OpenAIDialectProvider):
    """``POST /images/generations``; a returned URL is downloaded, without the key."""

    image_flavour: ClassVar[str] = "openai"
    images_path: ClassVar[str] = "images/generations"

    async def generate(self, request: ImageRequest) -> list[GeneratedImage]:
        self.require_key()
        body = build_image_body(request, flavour=self.image_flavour)
        self.logger.debug(
            "image request model=%s host=%s n=%d size=%s", request.model, _host(self.base_url), request.n, request.size
        )
        try:
            async with self.open("POST", self.images_path, json_body=body, headers=self.extra_headers()) as response:
                answer = loads(await response.aread(), self.provider)
            items = answer.get("data") if isinstance(answer, Mapping) else None
            if not isinstance(items, list) or not items:
                raise errors.ProtocolError(self.provider, "the image answer had no data")
            fallback = f"image/{answer.get('output_format', 'png')}".replace("jpg", "jpeg")
            return [await self._image(item, fallback) for item in items]
        except errors.ProviderError as exc:
            self.logger.warning("%s error: %s", exc.code, exc.message)
            raise

    async def _image(self, item: Any, fallback: str) -> GeneratedImage:
        if not isinstance(item, Mapping):
            raise errors.ProtocolError(self.provider, "an image entry was not an object")
        revised = item.get("revised_prompt") if isinstance(item.get("revised_prompt"), str) else None
        if isinstance(item.get("b64_json"), str):
            try:
                data = base64.b64decode(item["b64_json"], validate=True)
            except ValueError:
                raise errors.ProtocolError(self.provider, "an image's b64_json was not base64") from None
        elif isinstance(item.get("url"), str):
            data = await self._download(item["url"])
        else:
            raise errors.ProtocolError(self.provider, "an image entry had neither b64_json nor url")
        mime = item["mime_type"] if isinstance(item.get("mime_type"), str) else fallback
        return GeneratedImage(data=data, mime_type=sniff_image_mime(data, mime), revised_prompt=revised)

    async def _download(self, url: str) -> bytes:
        """Fetch a generated image. The URL points at a storage host, so no Authorization goes with it."""
        if not url.startswith(("https://", "http://")):
            raise errors.ProtocolError(self.provider, "an image URL was not http(s)")
        try:
            httpx.URL(url)
        except httpx.InvalidURL:
            raise errors.ProtocolError(self.provider, "an image URL was not a valid URL") from None
        client = get_client(url, self.timeouts)  # its transport applies the outbound-URL policy
        try:
            async with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise errors.ProviderUnavailableError(
                        self.provider, f"downloading a generated image failed with HTTP {response.status_code}"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_IMAGE_DOWNLOAD_BYTES:
                        raise errors.ProtocolError(self.provider, "a generated image was larger than 64 MB")
                    chunks.append(chunk)
        except UrlRefused as exc:
            # The provider's answer pointed somewhere qtap never fetches: an error in what it sent.
            raise errors.ProtocolError(
                self.provider,
                f"refusing to download the generated image from a link-local, metadata or refused address: {exc}",
                code=errors.UrlRefusedError.code,
            ) from None
        except httpx.TimeoutException:
            raise errors.ProviderTimeoutError(self.provider, "downloading a generated image timed out") from None
        except httpx.TransportError as exc:
            raise errors.ProviderConnectionError(
                self.provider, f"downloading a generated image failed: {type(exc).__name__}"
            ) from None
        return b"".join(chunks)


def _host(url: str) -> str:
    return re.sub(r"^[a-z]+://([^/]+).*$", r"\1", url)
