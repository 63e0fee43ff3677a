"""What the tests of the five OpenAI-dialect plugins share: which fake flavour each plugin talks to,
its key, and how to build it through the factory or, with custom timeouts, directly."""

from __future__ import annotations

from dataclasses import dataclass

from providers.contract import ChatRequest, LLMProvider, Message
from providers.factory import create_llm_provider
from providers.http import RetryPolicy, Timeouts
from providers.registry import registry
from tests.fakes.openai_dialect import FakeOpenAI

# What the recorded fixtures say (read by hand from tests/fakes/recordings).
OPENAI_TEXT = "The result of \\( 1231 \\times 2331 \\) is \\( 2,869,461 \\)."
OPENAI_USAGE = (87, 26)
OPENROUTER_TEXT = "Pebbles and Skipper."
OPENROUTER_USAGE = (17, 6, 0.0001025)


@dataclass(frozen=True)
class Flavour:
    provider: str  # providerName, as the factory is called
    fake: str  # FakeOpenAI flavour
    key: str | None
    recorded_text: str
    recorded_usage: tuple[int, int]


FLAVOURS = {
    "openai": Flavour("OPENAI", "openai", "sk-proj-Zx9secretvalue-for-tests-0001", OPENAI_TEXT, OPENAI_USAGE),
    "grok": Flavour("GROK", "xai", "xai-Zx9secretvalue-for-tests-0002", OPENAI_TEXT, OPENAI_USAGE),
    "gab-ai": Flavour("GAB_AI", "gab", "gab_Zx9secretvalue0fortests0003", OPENAI_TEXT, OPENAI_USAGE),
    "openrouter": Flavour(
        "OPENROUTER", "openrouter", "sk-or-v1-Zx9secretvalue-for-tests-0004", OPENROUTER_TEXT, OPENROUTER_USAGE[:2]
    ),
    "openai-compatible": Flavour(
        "OPENAI_COMPATIBLE", "compatible", "sk-local-Zx9secretvalue-for-tests-0005", OPENAI_TEXT, OPENAI_USAGE
    ),
}

FAST_RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.05)

# The profile parameter that puts the OpenAI and Grok plugins on Chat Completions (their default is the
# Responses API); the other dialect plugins speak only Chat Completions and ignore it.
CHAT_COMPLETIONS = {"api": "chat_completions"}


def make(flavour: Flavour, fake: FakeOpenAI, key: str | None = "default") -> LLMProvider:
    """The provider as the application builds it: through the factory, default retry policy."""
    return create_llm_provider(
        flavour.provider, api_key=flavour.key if key == "default" else key, base_url=fake.base_url
    )


def make_direct(
    flavour: Flavour, fake: FakeOpenAI, *, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None
):
    """The provider class built by hand, for tests that need short timeouts or fast retries."""
    plugin = registry.get(flavour.provider)
    cls = type(plugin.create_provider(api_key=flavour.key, base_url=fake.base_url))
    return cls(plugin.manifest, api_key=flavour.key, base_url=fake.base_url, timeouts=timeouts, retry=retry)


def hello(model: str = "gpt-4o-mini", **kwargs) -> ChatRequest:
    kwargs.setdefault("options", CHAT_COMPLETIONS)
    return ChatRequest(model=model, messages=(Message("user", "What is 1231 * 2331?"),), **kwargs)
