"""ensure_first_user: creates a working superuser once, and prints nothing secret afterwards."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

pytestmark = pytest.mark.django_db


def test_creates_the_first_superuser_and_says_how_to_sign_in():
    out = StringIO()
    call_command("ensure_first_user", stdout=out)
    text = out.getvalue()
    assert "http://127.0.0.1:8000/" in text
    password = re.search(r"password '([^']+)'", text).group(1)
    assert len(password) >= 12
    # The sign-in throttle's backend needs the request, as the sign-in page passes it.
    user = authenticate(RequestFactory().post("/login/"), username="admin", password=password)
    assert user is not None and user.is_superuser and user.is_staff

    again = StringIO()
    call_command("ensure_first_user", stdout=again)
    assert again.getvalue().strip() == "A user already exists; no user created."
    assert password not in again.getvalue()
    assert get_user_model().objects.count() == 1


def test_does_nothing_when_any_user_exists(user):
    out = StringIO()
    call_command("ensure_first_user", "--username", "root", stdout=out)
    assert "no user created" in out.getvalue()
    assert not get_user_model().objects.filter(username="root").exists()


def test_custom_username_and_url():
    out = StringIO()
    call_command("ensure_first_user", "--username", "ops", "--url", "http://127.0.0.1:9000/", stdout=out)
    assert "Sign in at http://127.0.0.1:9000/ with username 'ops'" in out.getvalue()
    assert get_user_model().objects.get().username == "ops"
