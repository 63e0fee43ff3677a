"""Keep API keys out of logs and error reports."""

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
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple):
        return tuple(_redact_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value


class RedactSecretsFilter(logging.Filter):
    """A logging filter that strips auth header values and key-shaped strings from every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            record.args = _redact_value(record.args)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
