"""Suite-wide fixtures. Each test area keeps its own fixtures in its own conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="correct horse battery")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="mallory", password="another long password")


@pytest.fixture(autouse=True)
def no_send_plans():
    """The plans of a chat's next send live per process (qtap_site.chat.plans): a test's ids may be
    another test's, so every test starts without them."""
    from qtap_site.chat import plans

    plans.plans.clear()
    yield
    plans.plans.clear()
