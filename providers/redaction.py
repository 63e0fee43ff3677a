"""Keep API keys out of logs and error reports.

May import: nothing of qtap's: the logging configuration and every room use it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"

_HEADER = re.compile(
    r"(?i)\b(authorization|x-api-key|x-goog-api-key|api-key|api_key|apikey|key)(['\"]?\s*[:=]\s*['\"]?)"
    r"(bearer\s+)?([^\s'\",&}]+)"
)
# Shapes of provider keys: OpenAI/OpenRouter/Anthropic sk-…, xAI xai-…, Gemini AIza…, Gab gab_…
_KEY_SHAPES = re.compile(
    r"\b(sk-(?:ant-|or-v1-|proj-)?[A-Za-z0-9_-]{12,}|xai-[A-Za-z0-9_-]{12,}|AIza[0-9A-Za-z_-]{20,}|gab_[A-Za-z0-9_-]{12,})"
)


def redact(text: str) -> str:
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}", text)
    return _KEY_SHAPES.sub(REDACTED, text)


def _redact_value(value: Any) -> Any:
    """A copy of ``value`` with every string in it redacted; any other object becomes its redacted str()
    (what "%s" would print), so nothing formats a key out of an object later."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, tuple | list):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, dict):
        return {_redact_value(k): _redact_value(v) for k, v in value.items()}
    return redact(str(value))


class RedactSecretsFilter(logging.Filter):
    """A logging filter that strips auth header values and key-shaped strings from every record.

    The message is formatted here, with its args, and the whole text redacted: a key can arrive in the
    message, in any arg (a str, a dict, a list, an exception, bytes, any object whose str() shows it) or in
    the exception and stack text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call (too few args...): the handler reports it, with nothing secret
            record.msg = redact(str(record.msg))
            record.args = _redact_value(record.args)
        else:
            record.msg = redact(message)
            record.args = ()
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
