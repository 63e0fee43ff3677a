"""Base URLs: cloud-metadata and link-local addresses are always refused; loopback and private ranges
too under QTAP_BASE_URL_POLICY=public-only. Checked where a user sets them: the profile service and form."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from providers.models import ConnectionProfile, ImageProfile
from providers.services import connection_profile_create, image_profile_create

pytestmark = pytest.mark.django_db

ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data/",  # AWS, Azure, GCP, OpenStack metadata
    "http://169.254.170.2/v2/credentials",  # ECS task credentials (link-local)
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud metadata
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://[fe80::1]:8080/v1",  # IPv6 link-local
    "http://[::ffff:169.254.169.254]/",  # metadata behind an IPv4-mapped IPv6 address
    "http://169.254.1.1:11434",  # IPv4 link-local
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "http://user:password@127.0.0.1:8080/v1",  # credentials belong in a key
]
PRIVATE = [
    "http://127.0.0.1:11434",
    "http://localhost:8080/v1",
    "http://[::1]:8080/v1",
    "http://10.1.2.3/v1",
    "http://172.16.0.10/v1",
    "http://192.168.1.20:8000/v1",
    "http://100.64.0.1/v1",  # carrier-grade NAT
]


def create(user: Any, base_url: str) -> ConnectionProfile:
    return connection_profile_create(
        user=user, name="p", plugin="qtap-plugin-openai-compatible", model="m", base_url=base_url
    )


@pytest.mark.parametrize("base_url", ALWAYS_REFUSED)
@pytest.mark.parametrize("policy", ["allow-private", "public-only"])
def test_metadata_link_local_and_odd_schemes_are_always_refused(
    user: Any, settings: Any, policy: str, base_url: str
) -> None:
    settings.QTAP_BASE_URL_POLICY = policy
    with pytest.raises(ValidationError) as refused:
        create(user, base_url)
    assert "base_url" in refused.value.message_dict
    with pytest.raises(ValidationError):
        image_profile_create(user=user, name="i", plugin="qtap-plugin-openai", model="m", base_url=base_url)
    assert not ConnectionProfile.objects.exists() and not ImageProfile.objects.exists()


@pytest.mark.parametrize("base_url", PRIVATE)
def test_loopback_and_private_ranges_are_refused_under_public_only(user: Any, settings: Any, base_url: str) -> None:
    settings.QTAP_BASE_URL_POLICY = "public-only"
    with pytest.raises(ValidationError) as refused:
        create(user, base_url)
    assert "public-only" in " ".join(refused.value.message_dict["base_url"])


@pytest.mark.parametrize("base_url", PRIVATE)
def test_loopback_and_private_ranges_are_allowed_by_default(user: Any, settings: Any, base_url: str) -> None:
    """The default keeps local model servers usable (the control for the test above)."""
    settings.QTAP_BASE_URL_POLICY = "allow-private"
    assert create(user, base_url).base_url == base_url


def test_the_profile_form_refuses_a_metadata_address(user: Any) -> None:
    client = Client()
    client.force_login(user)
    response = client.post(
        "/settings/profiles/new/",
        {
            "name": "sneaky",
            "plugin": "qtap-plugin-openai-compatible",
            "model": "m",
            "base_url": "http://169.254.169.254/latest/meta-data/",
            "parameters": "{}",
        },
    )
    assert response.status_code in (200, 400)  # the form again, with the error
    assert b"metadata" in response.content
    assert not ConnectionProfile.objects.exists()
