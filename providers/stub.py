"""Temporary base classes for plugins whose wire protocol is not implemented yet.

May import: ``providers.contract``, ``providers.manifest``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from providers.contract import ChatRequest, ChatResult, GeneratedImage, ImageRequest, ModelInfo, StreamEvent
from providers.manifest import Manifest


class NotYetImplementedProvider:
    def __init__(self, manifest: Manifest, *, api_key: str | None = None, base_url: str | None = None) -> None:
        self.manifest = manifest
        self._api_key = api_key
        self.base_url = base_url

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError(f"{self.manifest.name} cannot stream yet")
        yield  # pragma: no cover

    async def complete(self, request: ChatRequest) -> ChatResult:
        raise NotImplementedError(f"{self.manifest.name} cannot complete yet")

    async def list_models(self) -> list[ModelInfo]:
        raise NotImplementedError(f"{self.manifest.name} cannot list models yet")

    async def validate_key(self) -> None:
        raise NotImplementedError(f"{self.manifest.name} cannot validate keys yet")

    async def aclose(self) -> None:
        return None


class NotYetImplementedImageProvider:
    def __init__(self, manifest: Manifest, *, api_key: str | None = None, base_url: str | None = None) -> None:
        self.manifest = manifest
        self._api_key = api_key
        self.base_url = base_url

    async def generate(self, request: ImageRequest) -> list[GeneratedImage]:
        raise NotImplementedError(f"{self.manifest.name} cannot generate images yet")
