"""The names plugins import keep working from where plugins/README.md documents them, and from
``providers.http``, where a plugin written before the base class and the error helpers moved imports them.
Either module may be imported first: ``providers.http`` re-exports, and nothing it re-exports imports it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings

from providers import base, clients, errors, http, retries, streams

HOMES = {
    "HTTPProvider": base,
    "ModelCache": base,
    "model_cache": base,
    "key_fingerprint": base,
    "UpstreamError": errors,
    "extract_error": errors,
    "error_for_status": errors,
    "parse_retry_after": errors,
    "get_client": clients,
    "close_clients": clients,
    "Timeouts": clients,
    "RetryPolicy": retries,
    "send_with_retries": retries,
    "iter_sse": streams,
    "sse_json": streams,
    "iter_ndjson": streams,
    "drain": streams,
}


@pytest.mark.parametrize("name", sorted(HOMES))
def test_the_old_path_gives_the_same_object_as_the_new_home(name):
    assert getattr(http, name) is getattr(HOMES[name], name)
    assert name in http.__all__


@pytest.mark.parametrize(
    "statement",
    [
        "import providers.base",
        "from providers.http import HTTPProvider, extract_error, iter_sse",
        "import providers.openai_format",
        "from providers.errors import error_for_status; from providers.http import error_for_status as old",
    ],
)
def test_each_module_imports_first_in_a_fresh_interpreter(statement):
    result = subprocess.run(
        [sys.executable, "-c", statement], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
