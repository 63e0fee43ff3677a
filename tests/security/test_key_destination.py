"""A stored key is used only by a CSRF-checked POST, and only towards a host its owner chose.

The hole this closes: ``GET /settings/models/?api_key=<id>&base_url=<anywhere>`` decrypted the key and
sent it to ``<anywhere>/models``; a GET has no CSRF check and the session cookie goes along on a
top-level cross-site navigation, so a link was enough to hand a user's key to any host.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from providers.services import api_key_create, connection_profile_create
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import SECRET

pytestmark = pytest.mark.django_db

PLUGIN = "qtap-plugin-openai"


def logged_in(user: Any, *, csrf: bool = True) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def csrf_token(client: Client) -> str:
    client.get("/settings/profiles/new/")
    return client.cookies["csrftoken"].value


def saw_the_key(fake: FakeOpenAI) -> bool:
    return any(SECRET in value for request in fake.requests for value in request.headers.values())


@pytest.fixture
def key(user: Any) -> Any:
    return api_key_create(user=user, plugin=PLUGIN, label="work", secret=SECRET)


def test_a_get_that_names_a_key_is_refused_and_sends_nothing(user: Any, key: Any) -> None:
    with FakeOpenAI("openai") as attacker:
        response = logged_in(user).get(
            f"/settings/models/?plugin={PLUGIN}&api_key={key.pk}&base_url={attacker.base_url}"
        )
        assert response.status_code == 405
        assert attacker.requests == []


def test_a_post_without_the_csrf_token_is_refused_and_sends_nothing(user: Any, key: Any) -> None:
    with FakeOpenAI("openai") as attacker:
        response = logged_in(user).post(
            "/settings/models/", {"plugin": PLUGIN, "api_key": key.pk, "base_url": attacker.base_url}
        )
        assert response.status_code == 403
        assert attacker.requests == []


def test_a_key_is_not_sent_to_a_base_url_no_saved_profile_of_it_uses(user: Any, key: Any) -> None:
    with FakeOpenAI("openai") as elsewhere:
        client = logged_in(user)
        response = client.post(
            "/settings/models/",
            {"plugin": PLUGIN, "api_key": key.pk, "base_url": elsewhere.base_url},
            headers={"X-CSRFToken": csrf_token(client)},
        )
        body = response.content.decode()
        assert response.status_code == 200
        assert "Could not load models" in body and "saved profile that uses it" in body
        assert elsewhere.requests == []


def test_a_key_goes_to_the_base_url_of_a_saved_profile_that_uses_it(user: Any, key: Any) -> None:
    with FakeOpenAI("openai") as mine, FakeOpenAI("openai") as other:
        connection_profile_create(
            user=user, name="proxy", plugin=PLUGIN, model="gpt-4o", api_key=key, base_url=mine.base_url
        )
        # Another key of the same user saved for ``other`` does not open ``other`` to this key.
        spare = api_key_create(user=user, plugin=PLUGIN, label="spare", secret="sk-proj-spare0123456789abcdefghij")
        connection_profile_create(
            user=user, name="o", plugin=PLUGIN, model="gpt-4o", api_key=spare, base_url=other.base_url
        )
        client = logged_in(user)
        token = csrf_token(client)
        ok = client.post(
            "/settings/models/",
            {"plugin": PLUGIN, "api_key": key.pk, "base_url": mine.base_url + "/"},
            headers={"X-CSRFToken": token},
        )
        assert '<option value="gpt-4o">' in ok.content.decode()
        assert saw_the_key(mine)
        refused = client.post(
            "/settings/models/",
            {"plugin": PLUGIN, "api_key": key.pk, "base_url": other.base_url},
            headers={"X-CSRFToken": token},
        )
        assert "saved profile that uses it" in refused.content.decode()
        assert not saw_the_key(other)


def test_another_users_key_is_404(user: Any, other_user: Any, key: Any) -> None:
    client = logged_in(other_user)
    response = client.post(
        "/settings/models/", {"plugin": PLUGIN, "api_key": key.pk}, headers={"X-CSRFToken": csrf_token(client)}
    )
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/settings/keys/{key}/test/", "/settings/chat-profiles/{profile}/test/"])
def test_every_endpoint_that_uses_a_stored_key_refuses_get_and_needs_csrf(user: Any, key: Any, path: str) -> None:
    with FakeOpenAI("openai") as fake:
        profile = connection_profile_create(
            user=user, name="p", plugin=PLUGIN, model="gpt-4o", api_key=key, base_url=fake.base_url
        )
        url = path.format(key=key.pk, profile=profile.pk)
        client = logged_in(user)
        assert client.get(url).status_code == 405
        assert client.post(url).status_code == 403
        assert fake.requests == []
