"""Keys never reach a log line, wherever in the record they travel: the message, its %-args (strings,
dicts, lists, exceptions, bytes, any object with a str()), the exception text, the stack text; through
every handler the LOGGING setting leaves on any logger (Django's own console handler included)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from providers.redaction import REDACTED, RedactSecretsFilter
from tests.support.logs import handlers_writing_to_buffer

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-proj-FAKE-log-leak-check-not-a-key"
GEMINI_KEY = "AIzaSy-FAKE-log-leak-check-not-a-key-01"
LOGGERS = ("qtap.plugins.qtap-plugin-openai", "providers.http", "django", "django.request", "httpx", "daphne", "axes")


class Carrier:
    """An argument whose text is only known once it is formatted (an httpx.URL, a request, a model...)."""

    def __str__(self) -> str:
        return f"https://generativelanguage.googleapis.com/v1beta/models?key={GEMINI_KEY}"

    __repr__ = __str__


def all_handlers() -> list[logging.Handler]:
    """Every handler on any logger, except pytest's own (it captures records for test reports)."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.Logger.manager.loggerDict)]
    found: list[logging.Handler] = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if handler not in found and not type(handler).__module__.startswith("_pytest"):
                found.append(handler)
    return found


@pytest.fixture
def written(settings: Any) -> Iterator[io.StringIO]:
    """What every stream handler on every logger writes, with DEBUG on (Django's console handler writes only
    then) and every logger at DEBUG."""
    settings.DEBUG = True
    handlers = [h for h in all_handlers() if isinstance(h, logging.StreamHandler)]
    with handlers_writing_to_buffer(handlers, LOGGERS) as buffer:
        yield buffer


def failing_call() -> None:
    raise RuntimeError(f"upstream refused Authorization: Bearer {KEY}")


CALLS = {
    "in the message": lambda log: log.warning(f"calling with {KEY}"),
    "a str arg": lambda log: log.warning("calling with %s", KEY),
    "a repr'd str arg": lambda log: log.warning("calling with %r", KEY),
    "a dict arg": lambda log: log.warning("headers %s", {"Authorization": f"Bearer {KEY}", "n": 1}),
    "a mapping of named args": lambda log: log.warning("key %(key)s for %(who)s", {"key": KEY, "who": "alice"}),
    "a list arg": lambda log: log.warning("keys %s", [KEY, GEMINI_KEY]),
    "a nested arg": lambda log: log.warning("config %s", {"keys": [{"secret": KEY}]}),
    "an exception arg": lambda log: log.warning("failed: %s", RuntimeError(f"bad key {KEY}")),
    "a bytes arg": lambda log: log.warning("body %s", f'{{"api_key": "{KEY}"}}'.encode()),
    "an object arg": lambda log: log.warning("GET %s", Carrier()),
    "several args": lambda log: log.warning("%s %d %s", "first", 2, KEY),
    "a non-str message": lambda log: log.warning(Carrier()),
}


@pytest.mark.parametrize("logger_name", LOGGERS)
@pytest.mark.parametrize("how", sorted(CALLS))
def test_a_key_anywhere_in_a_log_call_is_redacted(written: io.StringIO, logger_name: str, how: str) -> None:
    CALLS[how](logging.getLogger(logger_name))
    output = written.getvalue()
    assert REDACTED in output, f"nothing was logged: {output!r}"
    assert KEY not in output and GEMINI_KEY not in output, output


@pytest.mark.parametrize("logger_name", LOGGERS)
def test_a_key_in_exception_text_is_redacted(written: io.StringIO, logger_name: str) -> None:
    log = logging.getLogger(logger_name)
    try:
        failing_call()
    except RuntimeError:
        log.exception("the call failed for %s", KEY)
    try:
        try:
            failing_call()
        except RuntimeError as inner:
            raise ValueError(f"while using {GEMINI_KEY}") from inner
    except ValueError:
        log.error("chained", exc_info=True, stack_info=True)
    output = written.getvalue()
    assert "Traceback" in output and "The above exception was the direct cause" in output
    assert KEY not in output and GEMINI_KEY not in output, output


def test_the_rest_of_the_line_is_kept(written: io.StringIO) -> None:
    logging.getLogger("qtap.plugins.qtap-plugin-openai").warning("%s retried %d times; key %s", "openai", 2, KEY)
    assert f"openai retried 2 times; key {REDACTED}" in written.getvalue()


UNFILTERED_HANDLERS = """
import logging
import qtap_site.asgi  # the served application, loaded as Daphne loads it: settings, apps, plugins
from providers.redaction import RedactSecretsFilter
loggers = [logging.getLogger(), *(logging.getLogger(n) for n in logging.Logger.manager.loggerDict)]
for logger in loggers:
    for handler in getattr(logger, "handlers", []):
        if not isinstance(handler, logging.NullHandler) and not any(
            isinstance(f, RedactSecretsFilter) for f in handler.filters
        ):
            print(repr(logger.name), repr(handler))
"""


def test_every_handler_the_settings_leave_redacts(tmp_path: Path) -> None:
    """Whatever handler a record reaches (Django's defaults stay on the "django" logger unless LOGGING
    replaces them), it passes the redaction filter first. In a fresh process: this one's test servers
    bring handlers of their own."""
    # The suite's DJANGO_SETTINGS_MODULE, on a database of its own (logging does not depend on which).
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["QTAP_DATA_DIR"] = str(tmp_path)
    for debug in ("0", "1"):
        shown = subprocess.run(
            [sys.executable, "-c", UNFILTERED_HANDLERS],
            cwd=ROOT,
            env={**env, "QTAP_DEBUG": debug},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == "", f"handlers without the redaction filter (QTAP_DEBUG={debug}):\n{shown.stdout}"


def test_a_malformed_call_still_redacts_and_does_not_raise(written: io.StringIO) -> None:
    record = logging.LogRecord("qtap", logging.WARNING, __file__, 1, "two %s %s", (KEY,), None)
    assert RedactSecretsFilter().filter(record) is True
    assert KEY not in str(record.msg) and KEY not in repr(record.args)
