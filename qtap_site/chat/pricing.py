"""Per-message cost: the provider's own figure when it reports one, else genai-prices (best effort), with
cached input tokens priced at the provider's cache-read and cache-write rates.

May import: nothing of the chat app; ``providers.contract`` for the usage it prices.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from providers.contract import Usage

logger = logging.getLogger(__name__)

# providerName → genai-prices provider id; providers not listed are priced by model name alone.
_PRICE_PROVIDERS = {
    "OPENAI": "openai",
    "ANTHROPIC": "anthropic",
    "GOOGLE": "google",
    "GROK": "x-ai",
    "OPENROUTER": "openrouter",
}
# Local models cost nothing, and a model name that happens to match a cloud model must not be priced.
_FREE_PROVIDERS = {"OLLAMA", "OPENAI_COMPATIBLE"}


def message_cost(usage: Usage | None, *, provider_name: str, model: str) -> Decimal | None:
    if usage is None:
        return None
    if usage.cost is not None:
        return Decimal(str(usage.cost))
    if provider_name in _FREE_PROVIDERS or not model or usage.input_tokens is None or usage.output_tokens is None:
        return None
    try:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price

        # input_tokens counts cached tokens too; genai-prices prices the cached part at the cache rates.
        price = calc_price(
            PriceUsage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cached_input_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            ),
            model,
            provider_id=_PRICE_PROVIDERS.get(provider_name),
        )
    except LookupError:
        return None
    except Exception:  # pricing data is a nicety: never fail a reply over it
        logger.debug("could not price %s %s", provider_name, model, exc_info=True)
        return None
    return Decimal(str(price.total_price))
