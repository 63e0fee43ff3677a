"""Retries before the first byte (providers.retries.send_with_retries): how long they wait and whether they
happen, as retry-after, retry-after-ms and x-should-retry say, within the policy's cap.

The upstream is an httpx.MockTransport answering a script of responses; asyncio.sleep is replaced by a
recorder, so an hour-long retry-after is seen as the wait it asks for without the test waiting it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from providers import errors
from providers.errors import error_for_status, extract_error, parse_retry_after
from providers.retries import RetryPolicy, send_with_retries

POLICY = RetryPolicy(max_retries=2, max_retry_after=60.0, backoff_base=0.5, backoff_max=8.0)
URL = "https://api.example.test/v1/chat"


class Upstream:
    """Answers each request with the next scripted (status, headers, body); 200 once the script is used up."""

    def __init__(self, *script: tuple[int, dict[str, str], dict[str, Any]]) -> None:
        self.script = list(script)
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.script:
            status, headers, body = self.script.pop(0)
            return httpx.Response(status, headers=headers, content=json.dumps(body).encode())
        return httpx.Response(200, content=b"data: ok\n\n")


def error_body(message: str = "busy", code: str = "busy") -> dict[str, Any]:
    return {"error": {"message": message, "code": code}}


def translate(status: int, headers: Any, body: bytes) -> errors.ProviderError:
    return error_for_status("test", status, extract_error(body), retry_after=parse_retry_after(headers))


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    recorded: list[float] = []

    async def record(delay: float) -> None:
        recorded.append(delay)

    monkeypatch.setattr("providers.retries.asyncio.sleep", record)
    yield recorded


async def send(upstream: Upstream, policy: RetryPolicy = POLICY) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
        response = await send_with_retries(
            client,
            lambda: client.build_request("POST", URL),
            provider="test",
            translate=translate,
            policy=policy,
            logger=logging.getLogger("tests.retries"),
        )
        await response.aclose()
        return response


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


# ---- how long ----------------------------------------------------------------------------------


async def test_a_retry_after_longer_than_the_cap_waits_the_cap(waits: list[float]) -> None:
    upstream = Upstream((429, {"retry-after": "3600"}, error_body("slow down", "rate_limit_exceeded")))
    response = await send(upstream)
    assert response.status_code == 200 and upstream.requests == 2
    assert waits == [60.0]


async def test_a_retry_after_ms_longer_than_the_cap_waits_the_cap(waits: list[float]) -> None:
    upstream = Upstream((503, {"retry-after-ms": "3600000"}, error_body()))
    await send(upstream)
    assert waits == [60.0]


async def test_a_retry_after_within_the_cap_is_obeyed(waits: list[float]) -> None:
    upstream = Upstream((429, {"retry-after": "7"}, error_body()), (503, {"retry-after-ms": "250"}, error_body()))
    await send(upstream)
    assert waits == [7.0, 0.25] and upstream.requests == 3


async def test_a_retry_after_http_date_waits_until_that_date(waits: list[float]) -> None:
    upstream = Upstream((503, {"retry-after": http_date(30)}, error_body()))
    await send(upstream)
    assert len(waits) == 1 and 28.0 <= waits[0] <= 30.0  # whole seconds in the header, a moment spent since


async def test_a_retry_after_http_date_far_ahead_is_capped_and_one_gone_by_is_no_wait(waits: list[float]) -> None:
    upstream = Upstream(
        (503, {"retry-after": http_date(7200)}, error_body()), (503, {"retry-after": http_date(-120)}, error_body())
    )
    await send(upstream)
    assert waits == [60.0, 0.0]


def test_parse_retry_after_reads_every_form() -> None:
    assert parse_retry_after({"retry-after": "3600"}) == 3600.0  # the cap is the policy's, not the parser's
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert 58.0 <= parse_retry_after({"retry-after": http_date(60)}) <= 60.0  # type: ignore[operator]
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "-5"}) == 0.0
    assert parse_retry_after({}) is None


def test_an_http_date_in_minus_0000_form_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 5322's "-0000" (as email.utils.formatdate writes) parses to a naive datetime: it is still UTC."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        header = email.utils.formatdate(time.time() + 60)
        assert header.endswith("-0000")
        assert 58.0 <= parse_retry_after({"retry-after": header}) <= 60.0  # type: ignore[operator]
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("value", ["soon", "nan", "inf", "Wed, 99 Foo 2015", "1e400"])
def test_a_retry_after_that_is_no_delay_is_ignored(value: str) -> None:
    """Neither a number of seconds nor an HTTP date: no delay from it (and no exception out of an error's
    translation)."""
    assert parse_retry_after({"retry-after": value}) is None
    assert parse_retry_after({"retry-after-ms": value}) is None


async def test_a_garbled_retry_after_falls_back_to_backoff(waits: list[float]) -> None:
    upstream = Upstream((503, {"retry-after": "soon"}, error_body()))
    response = await send(upstream)
    assert response.status_code == 200 and upstream.requests == 2
    assert len(waits) == 1 and 0.375 <= waits[0] <= 0.5  # backoff_base with up to 25 % jitter off


# ---- whether -----------------------------------------------------------------------------------


async def test_x_should_retry_true_retries_what_would_not_be(waits: list[float]) -> None:
    # A 400 is never retried on its own; the upstream's x-should-retry: true asks for it.
    plain = Upstream((400, {}, error_body("bad request", "invalid_request")))
    with pytest.raises(errors.InvalidRequestError):
        await send(plain)
    assert plain.requests == 1

    forced = Upstream((400, {"x-should-retry": "true"}, error_body("bad request", "invalid_request")))
    assert (await send(forced)).status_code == 200
    assert forced.requests == 2 and len(waits) == 1


async def test_x_should_retry_true_retries_even_an_error_that_is_not_retryable(waits: list[float]) -> None:
    quota = error_body("You exceeded your current quota", "insufficient_quota")
    plain = Upstream((429, {}, quota))
    with pytest.raises(errors.QuotaExceededError):
        await send(plain)
    assert plain.requests == 1

    forced = Upstream((429, {"x-should-retry": "true"}, quota))
    assert (await send(forced)).status_code == 200 and forced.requests == 2


@pytest.mark.parametrize("status", [429, 500, 503, 529])
async def test_x_should_retry_false_forbids_a_retry(waits: list[float], status: int) -> None:
    plain = Upstream((status, {}, error_body()))
    assert (await send(plain)).status_code == 200 and plain.requests == 2  # the control: retried without it

    forbidden = Upstream((status, {"x-should-retry": "false", "retry-after": "1"}, error_body()))
    with pytest.raises(errors.ProviderError) as caught:
        await send(forbidden)
    assert caught.value.status == status
    assert forbidden.requests == 1 and len(waits) == 1  # only the control waited


async def test_retries_stop_at_max_retries(waits: list[float]) -> None:
    upstream = Upstream(*[(503, {"retry-after": "0"}, error_body())] * 5)
    with pytest.raises(errors.ProviderUnavailableError):
        await send(upstream)
    assert upstream.requests == 3 and waits == [0.0, 0.0]
