"""Fixtures shared by the provider plugin tests (kept small: each test module owns its fakes)."""

from __future__ import annotations

import pytest

from providers.base import model_cache
from providers.http import close_clients


@pytest.fixture(autouse=True)
async def _fresh_http_state():
    """Every test starts with an empty model cache and ends with the pooled clients closed."""
    model_cache.clear()
    yield
    model_cache.clear()
    await close_clients()
