"""Base URL policy: metadata and link-local always refused; public-only also refuses loopback/private,
including host names that resolve there."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ValidationError

from providers.urlpolicy import validate_base_url


def resolver_for(mapping: dict[str, list[str]]):
    """A getaddrinfo stand-in: names from ``mapping``, anything else fails like an unknown host."""
    calls: list[str] = []

    def resolve(host, port, family=0, type=0, *rest):
        calls.append(host)
        if host not in mapping:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
            for a in mapping[host]
        ]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


ALWAYS_REFUSED = [
    ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
    ("http://[fd00:ec2::254]/", "cloud metadata"),
    ("http://metadata.google.internal/computeMetadata/v1", "cloud metadata"),
    ("http://METADATA.GOOGLE.INTERNAL./", "cloud metadata"),
    ("http://169.254.1.2:8080/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
    ("http://0.0.0.0:11434/", "not a usable server address"),
    ("file:///etc/passwd", "http:// or https://"),
    ("gopher://example.com/", "http:// or https://"),
    ("http://user:pass@example.com/", "not in the base URL"),
    ("http://", "no host name"),
    ("http://[::1/", "not a valid URL"),
]


@pytest.mark.parametrize("policy", ["allow-private", "public-only"])
@pytest.mark.parametrize("url, fragment", ALWAYS_REFUSED)
def test_always_refused(policy, url, fragment):
    with pytest.raises(ValidationError) as info:
        validate_base_url(url, policy, resolver=resolver_for({}))
    assert fragment in info.value.messages[0]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434",
        "http://localhost:8080/v1",
        "http://[::1]:8080/v1",
        "http://10.0.0.5/v1",
        "http://192.168.1.20:1234/v1",
        "https://api.openai.com/v1",
        "http://ollama:11434",  # a compose service name that does not resolve here
    ],
)
def test_default_policy_allows_local_and_private(url):
    resolve = resolver_for({"localhost": ["127.0.0.1", "::1"], "api.openai.com": ["162.159.140.245"]})
    assert validate_base_url(url, "allow-private", resolver=resolve) == url


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("http://127.0.0.1:11434", "loopback"),
        ("http://[::1]:8080", "loopback"),
        ("http://10.1.2.3/v1", "private"),
        ("http://172.16.0.9/v1", "private"),
        ("http://192.168.0.1/v1", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://100.64.1.1/", "shared"),
        ("http://localhost:8080/v1", "loopback"),
        ("http://intranet.example/v1", "private"),
        ("http://nowhere.invalid/v1", "does not resolve"),
    ],
)
def test_public_only_refuses_loopback_private_and_unresolvable(url, fragment):
    resolve = resolver_for({"localhost": ["127.0.0.1"], "intranet.example": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(ValidationError) as info:
        validate_base_url(url, "public-only", resolver=resolve)
    assert fragment in info.value.messages[0]


def test_public_only_allows_public_hosts_and_checks_every_address():
    resolve = resolver_for({"api.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    assert validate_base_url("https://api.example.com/v1", "public-only", resolver=resolve)
    assert resolve.calls == ["api.example.com"]


def test_a_name_resolving_to_metadata_is_refused_even_by_default():
    resolve = resolver_for({"sneaky.example": ["169.254.169.254"]})
    with pytest.raises(ValidationError) as info:
        validate_base_url("http://sneaky.example/", "allow-private", resolver=resolve)
    assert info.value.messages == [
        "sneaky.example (169.254.169.254) is a cloud metadata endpoint; this base URL is refused."
    ]


def test_policy_comes_from_settings(settings):
    settings.QTAP_BASE_URL_POLICY = "public-only"
    with pytest.raises(ValidationError, match="loopback"):
        validate_base_url("http://127.0.0.1:1234/")
    settings.QTAP_BASE_URL_POLICY = "allow-private"
    assert validate_base_url("http://127.0.0.1:1234/") == "http://127.0.0.1:1234/"
    settings.QTAP_BASE_URL_POLICY = "anything-goes"
    with pytest.raises(ValidationError, match="QTAP_BASE_URL_POLICY must be one of"):
        validate_base_url("http://127.0.0.1:1234/")


# ---- at use: literal hosts judged without resolving them ------------------------------------------

from providers.urlpolicy import host_problem, literal_address  # noqa: E402


@pytest.mark.parametrize(
    "host, address",
    [
        ("2852039166", "169.254.169.254"),  # decimal
        ("0xa9fea9fe", "169.254.169.254"),  # hex
        ("0251.0376.0251.0376", "169.254.169.254"),  # octal parts
        ("169.254.43518", "169.254.169.254"),  # two parts
        ("[::ffff:169.254.169.254]", "::ffff:a9fe:a9fe"),
        ("127.1", "127.0.0.1"),
    ],
)
def test_every_spelling_of_an_address_is_read_as_that_address(host: str, address: str) -> None:
    assert str(literal_address(host)) == address


@pytest.mark.parametrize("policy", ["allow-private", "public-only"])
@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "2852039166",
        "0xa9fea9fe",
        "[::ffff:169.254.169.254]",
        "64:ff9b::a9fe:a9fe",  # NAT64
        "2002:a9fe:a9fe::1",  # 6to4
        "metadata.google.internal.",
        "METADATA.GOOG",
        "[fe80::1]",
    ],
)
def test_metadata_and_link_local_hosts_are_refused_in_every_spelling(policy: str, host: str) -> None:
    assert host_problem(host, policy) is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "localhost", "api.localhost", "10.0.0.1", "[::1]"])
def test_public_only_refuses_loopback_and_private_hosts_in_every_spelling(host: str) -> None:
    assert host_problem(host, "public-only") is not None
    assert host_problem(host, "allow-private") is None


def test_names_are_left_to_the_resolver() -> None:
    assert host_problem("api.openai.com", "public-only") is None
    assert literal_address("api.openai.com") is None
