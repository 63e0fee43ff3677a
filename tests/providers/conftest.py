"""Fixtures of the provider data-layer tests: a fresh encryption key, and a small key-checking plugin
served by a local HTTP server on a real loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from providers.base import HTTPProvider
from providers.contract import LLMProvider, ProviderPlugin
from providers.manifest import parse_manifest
from providers.registry import registry
from tests.fakes.server import FakeProvider, Receive, RecordedRequest, Send, respond

GOOD_KEY = "kt-good-0123456789abcdef"
KEYCHECK = "qtap-plugin-keycheck"


@pytest.fixture(autouse=True)
def encryption_key(settings) -> str:
    """Every test encrypts with its own key, never a generated file in the data directory."""
    key = Fernet.generate_key().decode()
    settings.QTAP_ENCRYPTION_KEYS = [key]
    return key


class KeyCheckServer(FakeProvider):
    """Answers GET /v1/models like an OpenAI-style API: 200 for GOOD_KEY, else 401 with the real wording."""

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        if request.headers.get("authorization") == f"Bearer {GOOD_KEY}":
            await respond(send, 200, {"object": "list", "data": [{"id": "kc-small", "object": "model"}]})
            return
        await respond(
            send,
            401,
            {"error": {"type": "authentication_error", "message": "invalid x-api-key: the key was rejected"}},
        )

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"


class KeyCheckProvider(HTTPProvider):
    async def validate_key(self) -> None:
        self.require_key()
        await self.get_json("models")

    async def fetch_models(self):  # type: ignore[no-untyped-def]
        from providers.contract import ModelInfo

        data = await self.get_json("models")
        return [ModelInfo(id=item["id"]) for item in data["data"]]


class KeyCheckPlugin(ProviderPlugin):
    def create_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> LLMProvider:
        return KeyCheckProvider(self.manifest, api_key=api_key, base_url=base_url)


def keycheck_plugin(base_url_default: str) -> KeyCheckPlugin:
    plugin = KeyCheckPlugin()
    plugin.manifest = parse_manifest(
        {
            "name": KEYCHECK,
            "title": "Key check",
            "version": "1.0.0",
            "providerConfig": {
                "providerName": "KEYCHECK",
                "displayName": "Key Check",
                "abbreviation": "KC",
                "colors": {"bg": "#000000", "text": "#ffffff"},
                "requiresApiKey": True,
                "apiKeyPattern": "^kt-",
                "baseUrlDefault": base_url_default,
            },
        }
    )
    return plugin


@pytest.fixture
def keycheck_server() -> Iterator[KeyCheckServer]:
    with KeyCheckServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def keycheck(keycheck_server: KeyCheckServer) -> Iterator[KeyCheckServer]:
    """The key-check plugin registered (default base URL = the local server) for the test."""
    with registry.temporarily(keycheck_plugin(keycheck_server.base_url)):
        yield keycheck_server
