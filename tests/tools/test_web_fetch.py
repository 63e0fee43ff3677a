"""web_fetch against local HTTP sites: readable text out of HTML, plain text and JSON as they are, other
types refused, the size and time caps, redirects followed hop by hop under the one URL policy (a refused
target is never contacted), and the allowlist."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest

from providers import urlpolicy
from providers.contract import ToolContext, ToolResult
from tests.tools.conftest import WEB_FETCH, tool_provider
from tests.tools.web_server import Reply, serve

ARTICLE = """<!doctype html><html><head><title>The Page Title</title>
<style>body { color: STYLE_TEXT; }</style><script>var leaked = "SCRIPT_TEXT";</script></head>
<body><nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>Readable heading</h1>
<p>The first paragraph of the article says what qtap's web fetch tool is for, at some length.</p>
<p>The second paragraph goes on: the model reads the main text, not the menus or the scripts.</p>
<script>document.write("INLINE_SCRIPT")</script></article>
<footer>Footer small print</footer></body></html>"""


async def fetch(url: str, **settings: Any) -> ToolResult:
    arguments = {"url": url, **settings.pop("arguments", {})}
    return await tool_provider(WEB_FETCH).call("web_fetch", arguments, ToolContext(user_id=1, settings=settings))


@pytest.fixture
def pretend_127_0_0_1_is_public(monkeypatch, settings):
    """Under public-only, 127.0.0.1 plays a public host (so a test site can be the first hop) while every
    other loopback address, 127.0.0.2 included, stays refused as loopback."""
    settings.QTAP_BASE_URL_POLICY = "public-only"
    real = urlpolicy.address_problem

    def problem(address: Any, policy: str) -> str | None:
        return None if str(address) == "127.0.0.1" else real(address, policy)

    monkeypatch.setattr(urlpolicy, "address_problem", problem)


async def test_the_tool_is_listed_with_its_schema() -> None:
    (spec,) = await tool_provider(WEB_FETCH).list_tools(ToolContext(user_id=1))
    assert spec.name == "web_fetch" and spec.parameters["required"] == ["url"]
    assert spec.parameters["properties"]["max_chars"]["type"] == "integer"


async def test_html_becomes_its_title_and_main_text_without_scripts_or_styles() -> None:
    async with serve({"/article": Reply(body=ARTICLE)}) as site:
        result = await fetch(site.url("/article"))
    assert not result.is_error
    assert result.content.startswith("Title: ") and f"URL: {site.url('/article')}" in result.content
    assert "The first paragraph of the article" in result.content and "The second paragraph" in result.content
    for hidden in ("SCRIPT_TEXT", "STYLE_TEXT", "INLINE_SCRIPT", "var leaked"):
        assert hidden not in result.content
    assert site.requests[0][1]["user-agent"].startswith("qtap-web-fetch")
    assert "cookie" not in site.requests[0][1]


async def test_plain_text_and_json_come_back_as_they_are() -> None:
    text = "line one\n  line two, indented\n"
    data = json.dumps({"answer": 42, "items": ["a", "b"]}, indent=2)
    routes = {
        "/notes.txt": Reply(body=text, content_type="text/plain; charset=utf-8"),
        "/data.json": Reply(body=data, content_type="application/json"),
    }
    async with serve(routes) as site:
        plain = await fetch(site.url("/notes.txt"))
        parsed = await fetch(site.url("/data.json"))
    assert plain.content.endswith("\n\n" + text)  # as it is, to the last newline
    assert data in parsed.content and not parsed.is_error


async def test_other_types_are_refused_in_words() -> None:
    async with serve({"/logo.png": Reply(body=b"\x89PNG\r\n\x1a\n\x00\x00", content_type="image/png")}) as site:
        result = await fetch(site.url("/logo.png"))
    assert result.is_error and "image/png" in result.content and "HTML, plain text and JSON" in result.content


async def test_an_error_status_is_an_error_with_what_the_page_said() -> None:
    async with serve() as site:
        result = await fetch(site.url("/missing"))
    assert result.is_error and "HTTP 404" in result.content and "no such page" in result.content


async def test_a_page_over_the_size_cap_is_cut_with_a_note() -> None:
    body = "".join(f"{i:05d} " for i in range(2000))  # 12000 bytes
    async with serve({"/big.txt": Reply(body=body, content_type="text/plain")}) as site:
        result = await fetch(site.url("/big.txt"), max_bytes=4096)
    assert not result.is_error
    assert body[:4096] in result.content and body[:4097] not in result.content
    assert "larger than the size cap of 4 KB" in result.content and "cut" in result.content


async def test_max_chars_cuts_the_text_and_says_so() -> None:
    body = "x" * 5000
    async with serve({"/long.txt": Reply(body=body, content_type="text/plain")}) as site:
        result = await fetch(site.url("/long.txt"), arguments={"max_chars": 1000})
    assert "x" * 1000 in result.content and "x" * 1001 not in result.content
    assert "Cut at 1000 of 5000 characters" in result.content


async def test_a_slow_server_hits_the_time_cap() -> None:
    async with serve({"/slow": Reply(body="late", delay=5)}) as site:
        started = time.monotonic()
        result = await fetch(site.url("/slow"), timeout_seconds=1)
    assert time.monotonic() - started < 3
    assert result.is_error and "did not answer within the time limit of 1 s" in result.content


async def test_a_cancelled_fetch_hangs_up_at_once() -> None:
    async with serve({"/stalls": Reply(body="x" * 10_000, content_type="text/plain", stall=True)}) as site:
        task = asyncio.ensure_future(fetch(site.url("/stalls")))
        while not site.requests:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 0.3
        await asyncio.wait_for(site.client_left.wait(), 2)


async def test_redirects_are_followed_up_to_five() -> None:
    routes = {f"/r{i}": Reply(302, headers={"Location": f"/r{i + 1}"}) for i in range(7)}
    routes["/r3"] = Reply(301, headers={"Location": "/final.txt"})
    routes["/final.txt"] = Reply(body="arrived", content_type="text/plain")
    async with serve(routes) as site:
        followed = await fetch(site.url("/r0"))
        site.routes["/r3"] = Reply(302, headers={"Location": "/r4"})
        too_many = await fetch(site.url("/r0"))
    assert followed.content.endswith("arrived") and "Redirected 4 times" in followed.content
    assert too_many.is_error and "more than 5 times" in too_many.content


@pytest.mark.parametrize(
    "target, words",
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
        ("http://[fe80::1]/", "link-local"),
    ],
)
async def test_a_redirect_to_a_refused_host_is_refused(target, words) -> None:
    async with serve({"/go": Reply(302, headers={"Location": target})}) as site:
        result = await fetch(site.url("/go"))
    assert result.is_error and result.content.startswith("The redirect to ") and words in result.content
    assert site.paths == ["/go"]


async def test_under_public_only_a_redirect_to_a_private_address_never_reaches_it(pretend_127_0_0_1_is_public) -> None:
    async with serve({"/secret": Reply(body="private", content_type="text/plain")}, host="127.0.0.2") as inside:
        routes = {"/go": Reply(302, headers={"Location": inside.url("/secret")}), "/ok": Reply(body=ARTICLE)}
        async with serve(routes) as outside:
            assert not (await fetch(outside.url("/ok"))).is_error  # the first hop itself is allowed
            result = await fetch(outside.url("/go"))
    assert result.is_error and "The redirect to" in result.content
    assert "127.0.0.2 is a loopback address, refused by QTAP_BASE_URL_POLICY=public-only" in result.content
    assert inside.requests == []


async def test_under_public_only_a_name_resolving_to_a_private_address_is_refused_as_it_connects(
    pretend_127_0_0_1_is_public, monkeypatch
) -> None:
    """The name passes the literal check; the transport refuses the address it resolves to."""
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.2" if host == "inside.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    async with serve({"/secret": Reply(body="private", content_type="text/plain")}, host="127.0.0.2") as inside:
        target = f"http://inside.test:{inside.port}/secret"
        async with serve({"/go": Reply(302, headers={"Location": target})}) as outside:
            result = await fetch(outside.url("/go"))
            direct = await fetch(target)
    assert result.is_error and "The redirect to" in result.content and "127.0.0.2" in result.content
    assert direct.is_error and "loopback" in direct.content
    assert inside.requests == []


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://0xa9fea9fe/latest/meta-data/", "cloud metadata"),
        ("http://169.254.10.20:8080/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://user:pw@127.0.0.1/", "credentials"),
        ("not a url", "absolute"),
    ],
)
async def test_refused_urls_are_tool_errors_in_words(url, words) -> None:
    result = await fetch(url)
    assert result.is_error and words in result.content


async def test_the_allowlist_refuses_other_hosts_and_their_redirects() -> None:
    async with serve({"/page.txt": Reply(body="allowed", content_type="text/plain")}) as site:
        routes = {"/away": Reply(302, headers={"Location": site.url("/page.txt").replace("127.0.0.1", "localhost")})}
        site.routes.update(routes)
        refused = await fetch(site.url("/page.txt"), allowlist=["example.com", "*.example.org"])
        allowed = await fetch(site.url("/page.txt"), allowlist=["127.0.0.1"])
        redirected = await fetch(site.url("/away"), allowlist=["127.0.0.1"])
    assert refused.is_error and "127.0.0.1 is not on your allowlist" in refused.content
    assert allowed.content.endswith("allowed")
    assert redirected.is_error and "The redirect to" in redirected.content and "localhost" in redirected.content
    assert site.paths == ["/page.txt", "/away"]


def test_allowlist_patterns() -> None:
    import importlib

    options = importlib.import_module("qtap_plugins.qtap_plugin_web_fetch.options")
    parsed = options.options_from({"allowlist": ["Example.COM.", "*.docs.test", "https://api.site.test/v1", "", 5]})
    assert parsed.allowlist == ("example.com", "*.docs.test", "api.site.test")
    assert options.allowed_by(parsed.allowlist, "example.com")
    assert not options.allowed_by(parsed.allowlist, "www.example.com")
    assert options.allowed_by(parsed.allowlist, "a.docs.test") and not options.allowed_by(parsed.allowlist, "docs.test")
    clamped = options.options_from({"max_bytes": 1, "timeout_seconds": 10_000})
    assert clamped.max_bytes == 1024 and clamped.timeout_seconds == 55
