"""The sign-in throttle (django-axes): wrong passwords lock an account and an address out for a while,
on the site's sign-in page and the admin's; an operator's reset command lifts it; signed-in sessions and
their websockets are untouched."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import AsyncClient, Client, override_settings
from django.utils import timezone

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"  # alice's, from tests/conftest.py
MALLORY_PASSWORD = "another long password"
ATTACKER = "203.0.113.7"
ELSEWHERE = "198.51.100.20"
LOCKED = "Sign-in locked"
MISMATCH = "didn't match"


@pytest.fixture(autouse=True)
def throttle_on() -> None:
    """These tests are about the throttle the site runs with: it must be on, at its default limit."""
    assert settings.AXES_ENABLED
    assert settings.AXES_FAILURE_LIMIT == 5


def sign_in(client: Client, username: str, password: str, address: str, path: str = "/login/") -> Any:
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def is_locked_page(response: Any) -> bool:
    return response.status_code == 429 and LOCKED in response.content.decode()


def fail(username: str, address: str, times: int, path: str = "/login/") -> list[Any]:
    client = Client()
    return [sign_in(client, username, f"wrong password {i}", address, path) for i in range(times)]


def test_ten_wrong_passwords_lock_the_account_and_the_address(user: Any, other_user: Any) -> None:
    responses = fail("alice", ATTACKER, 10)
    # Up to the limit a wrong password gets the usual answer; from the limit on, the lockout page.
    for number, response in enumerate(responses[:4], start=1):
        assert response.status_code == 200 and MISMATCH in response.content.decode(), number
        assert LOCKED not in response.content.decode()
    for number, response in enumerate(responses[4:], start=5):
        assert is_locked_page(response), f"wrong password {number} was answered {response.status_code}"
        assert MISMATCH not in response.content.decode()

    # Even the right password is refused now, and no session is made.
    client = Client()
    right = sign_in(client, "alice", PASSWORD, ATTACKER)
    assert is_locked_page(right)
    assert not signed_in(client)
    assert client.get("/")["Location"].startswith("/login/")

    # Another account from another address signs in as usual.
    bystander = Client()
    response = sign_in(bystander, "mallory", MALLORY_PASSWORD, ELSEWHERE)
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in(bystander)

    # Per account: alice is locked from any address. Per address: the attacker's address is locked for anyone.
    from_elsewhere = Client()
    assert is_locked_page(sign_in(from_elsewhere, "alice", PASSWORD, ELSEWHERE))
    assert not signed_in(from_elsewhere)
    same_address = Client()
    assert is_locked_page(sign_in(same_address, "mallory", MALLORY_PASSWORD, ATTACKER))
    assert not signed_in(same_address)


def test_the_lockout_page_says_when_to_try_again(user: Any) -> None:
    before = timezone.now()
    page = fail("alice", ATTACKER, 5)[-1]
    after = timezone.now()
    assert is_locked_page(page)
    text = page.content.decode()
    assert "<h1>Sign-in locked</h1>" in text and 'href="/login/"' in text
    assert "/static/qtap/qtap.css" in text  # the site's own page, not a bare message
    retry_at = dt.datetime.fromisoformat(re.search(r'<time datetime="([^"]+)"', text).group(1))
    cool_off = dt.timedelta(minutes=15)
    assert before + cool_off - dt.timedelta(seconds=1) <= retry_at <= after + cool_off
    assert f"{retry_at:%H:%M} UTC" in text and "in 15 minutes" in text


@override_settings(AXES_COOLOFF_TIME=None)
def test_without_a_cool_off_the_page_says_to_ask_an_administrator(user: Any) -> None:
    page = fail("alice", ATTACKER, 5)[-1]
    assert is_locked_page(page)
    assert "until an administrator lifts it" in page.content.decode()
    assert "<time" not in page.content.decode()


@override_settings(AXES_FAILURE_LIMIT=2)
def test_the_limit_is_the_setting(user: Any) -> None:
    first, second = fail("alice", ATTACKER, 2)
    assert first.status_code == 200 and is_locked_page(second)


def test_the_admin_sign_in_is_throttled_too(django_user_model: Any) -> None:
    django_user_model.objects.create_superuser(username="root", password="a long enough password")
    responses = fail("root", ATTACKER, 5, path="/admin/login/")
    assert all(r.status_code == 200 for r in responses[:4])
    assert is_locked_page(responses[4])
    client = Client()
    assert is_locked_page(sign_in(client, "root", "a long enough password", ATTACKER, "/admin/login/"))
    assert client.get("/admin/").status_code == 302 and not signed_in(client)


def test_failures_on_both_sign_in_pages_add_up(user: Any) -> None:
    fail("alice", ATTACKER, 3)
    fail("alice", ATTACKER, 2, path="/admin/login/")
    assert is_locked_page(sign_in(Client(), "alice", PASSWORD, ATTACKER))


def test_the_reset_commands_unlock(user: Any) -> None:
    fail("alice", ATTACKER, 5)
    assert is_locked_page(sign_in(Client(), "alice", PASSWORD, ELSEWHERE))
    out = StringIO()
    call_command("axes_reset_username", "alice", stdout=out)
    client = Client()
    assert sign_in(client, "alice", PASSWORD, ELSEWHERE).status_code == 302 and signed_in(client)

    fail("alice", ATTACKER, 5)
    assert is_locked_page(sign_in(Client(), "alice", PASSWORD, ATTACKER))
    call_command("axes_reset", stdout=out)
    client = Client()
    assert sign_in(client, "alice", PASSWORD, ATTACKER).status_code == 302 and signed_in(client)


@pytest.mark.django_db(transaction=True)
async def test_the_lockout_page_through_the_asgi_stack(user: Any) -> None:
    """The served site runs Django's async request path, where axes hands the page different arguments."""
    client = AsyncClient()
    for _ in range(4):
        response = await client.post("/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    response = await client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 429 and LOCKED in response.content.decode()
    assert "<time datetime=" in response.content.decode()
    response = await client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429


@pytest.mark.django_db(transaction=True)
async def test_a_signed_in_session_and_its_websocket_are_not_locked_out(user: Any) -> None:
    """Someone guessing alice's password locks new sign-ins, not the session she already has."""
    from asgiref.sync import sync_to_async

    from qtap_site.chat.services import chat_create
    from tests.support.wsclient import InProcessTab

    alice = Client()
    signed = await sync_to_async(sign_in)(alice, "alice", PASSWORD, "127.0.0.1")
    assert signed.status_code == 302
    chat = await sync_to_async(chat_create)(user=user, title="mine")
    await sync_to_async(fail)("alice", ATTACKER, 6)
    assert is_locked_page(await sync_to_async(sign_in)(Client(), "alice", PASSWORD, "127.0.0.1"))

    assert (await sync_to_async(alice.get)(f"/chats/{chat.pk}/")).status_code == 200
    cookie = f"{settings.SESSION_COOKIE_NAME}={alice.cookies[settings.SESSION_COOKIE_NAME].value}"
    tab = await InProcessTab.open(chat.pk, cookie=cookie)
    assert (await tab.recv())["type"] == "chat.state"
    await tab.close()


SHOW_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'limit': s.AXES_FAILURE_LIMIT, 'cool_off': s.AXES_COOLOFF_TIME and "
    "s.AXES_COOLOFF_TIME.total_seconds(), 'by': s.AXES_LOCKOUT_PARAMETERS, "
    "'backend': s.AUTHENTICATION_BACKENDS[0], 'last_middleware': s.MIDDLEWARE[-1]}))"
)


def settings_with(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QTAP_LOGIN_") and k != "DATABASE_URL"}
    env.update({"DJANGO_SETTINGS_MODULE": "qtap_site.settings", "QTAP_DATA_DIR": str(tmp_path), **variables})
    return subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_throttle_is_tuned_from_the_environment(tmp_path: Path) -> None:
    default = settings_with(tmp_path)
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout) == {
        "limit": 5,
        "cool_off": 900.0,
        "by": ["username", "ip_address"],
        "backend": "axes.backends.AxesStandaloneBackend",
        "last_middleware": "axes.middleware.AxesMiddleware",
    }
    tuned = settings_with(
        tmp_path, QTAP_LOGIN_FAILURE_LIMIT="3", QTAP_LOGIN_COOLOFF_MINUTES="0", QTAP_LOGIN_LOCK_BY="account+address"
    )
    assert tuned.returncode == 0, tuned.stderr
    shown = json.loads(tuned.stdout)
    assert (shown["limit"], shown["cool_off"], shown["by"]) == (3, None, [["username", "ip_address"]])

    for variable, value in (("QTAP_LOGIN_LOCK_BY", "acount"), ("QTAP_LOGIN_FAILURE_LIMIT", "0")):
        refused = settings_with(tmp_path, **{variable: value})
        assert refused.returncode != 0 and variable in refused.stderr, (variable, refused.stderr[-500:])
