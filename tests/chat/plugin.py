"""A provider plugin for the chat tests, speaking the shared OpenAI dialect to a local fake server."""

from __future__ import annotations

from providers.contract import LLMProvider, ProviderPlugin
from providers.manifest import Manifest
from providers.openai_format import OpenAIDialectProvider

PLUGIN_NAME = "qtap-plugin-chattest"

MANIFEST = {
    "name": PLUGIN_NAME,
    "title": "Chat test",
    "version": "1.0.0",
    "capabilities": ["LLM_PROVIDER"],
    "providerConfig": {
        "providerName": "CHATTEST",
        "displayName": "Chat test",
        "abbreviation": "CT",
        "colors": {"bg": "#000000", "text": "#ffffff"},
        "requiresApiKey": True,
        "apiKeyPattern": "^sk-",
        "baseUrlDefault": "http://127.0.0.1:9/v1",
        "attachmentSupport": {
            "supported": True,
            "mimeTypes": ["image/png", "image/jpeg"],
            "maxBytes": 1048576,
            "description": "PNG and JPEG",
        },
    },
}


class ChatTestProvider(OpenAIDialectProvider):
    default_read_timeout = 10.0


class ChatTestPlugin(ProviderPlugin):
    def create_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> LLMProvider:
        return ChatTestProvider(self.manifest, api_key=api_key, base_url=base_url)


def make_plugin() -> ChatTestPlugin:
    plugin = ChatTestPlugin()
    plugin.manifest = Manifest.model_validate(MANIFEST)
    return plugin
