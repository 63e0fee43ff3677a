"""The HTTP helpers plugins import, from one place.

The pooled client and its timeouts live in ``providers.clients``, retries before the first byte in
``providers.retries``, SSE and NDJSON iteration in ``providers.streams``. Plugins written before the
base class and the error helpers moved still find them here: ``HTTPProvider`` and the model cache
(their home is ``providers.base``) and the error-body and status helpers (``providers.errors``).

May import: the modules it re-exports, ``providers.base``, ``providers.clients``, ``providers.errors``,
``providers.retries``, ``providers.streams``; none of them imports this one.
"""

from __future__ import annotations

from providers.base import HTTPProvider, ModelCache, key_fingerprint, model_cache
from providers.clients import Timeouts, close_clients, get_client
from providers.errors import UpstreamError, error_for_status, extract_error, parse_retry_after
from providers.retries import RETRY_STATUSES, ErrorTranslator, RetryPolicy, send_with_retries
from providers.streams import drain, iter_ndjson, iter_sse, sse_json

__all__ = [
    "RETRY_STATUSES",
    "ErrorTranslator",
    "HTTPProvider",
    "ModelCache",
    "RetryPolicy",
    "Timeouts",
    "UpstreamError",
    "close_clients",
    "drain",
    "error_for_status",
    "extract_error",
    "get_client",
    "iter_ndjson",
    "iter_sse",
    "key_fingerprint",
    "model_cache",
    "parse_retry_after",
    "send_with_retries",
    "sse_json",
]
