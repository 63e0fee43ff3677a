"""The browser workspace in Chromium against a live Daphne, with the real plugins talking to a local
OpenAI-dialect server: set-up, streaming, stop, regenerate, attachments, images, reload, XSS, 360 px.

Screenshots of every step land in test-results/ui/<test>/.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import pytest
from PIL import Image

from providers.models import ConnectionProfile
from providers.services import connection_profile_create, image_profile_create
from qtap_site.chat.models import Message
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import SECRET, ChatSetup
from tests.ui.live import Shots, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

TIMEOUT = 15_000  # ms
LAST = "[...document.querySelectorAll('#messages .msg-assistant')].pop()"  # the newest reply, in page JS


def png(width: int = 48, height: int = 48, colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def open_chat(page: Any, server: Any, setup: ChatSetup) -> None:
    sign_in(page, server)
    page.goto(server.url(f"/chats/{setup.chat.pk}/"))
    wait_connected(page)


def wait_connected(page: Any) -> None:
    page.wait_for_function("() => document.getElementById('conn-status').textContent === 'Connected'", timeout=TIMEOUT)


def send(page: Any, text: str) -> None:
    page.locator("#prompt").fill(text)
    page.locator("#prompt").press("Enter")


def last_assistant(page: Any) -> Any:
    return page.locator("#messages .msg-assistant").last


def test_sign_in_add_key_and_create_a_profile(
    qtap_server: Any, browser_page: Any, alice: Any, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    fake.api_key = SECRET
    sign_in(page, qtap_server)
    page.get_by_text("Set up a model to chat with").wait_for()
    shot("first-run")

    page.get_by_role("link", name="Add an API key").click()
    page.locator("label.provider-option", has_text="OpenAI").first.click()
    page.get_by_label("Label").fill("my openai key")
    page.get_by_label("Secret").fill("not-a-real-looking-key")
    page.get_by_text("does not look like a key for OpenAI").wait_for(timeout=TIMEOUT)  # pattern warning, live
    page.get_by_label("Secret").fill(SECRET)
    page.get_by_text("does not look like").wait_for(state="detached", timeout=TIMEOUT)
    shot("key-form")
    page.get_by_role("button", name="Save key").click()
    page.get_by_text("…" + SECRET[-4:]).wait_for(timeout=TIMEOUT)
    assert SECRET not in page.content()
    assert page.get_by_label("Secret").input_value() == ""
    shot("key-saved")

    page.goto(qtap_server.url("/settings/profiles/new/"))
    page.get_by_label("Name").fill("Fake OpenAI")
    page.locator("label.provider-option", has_text=re.compile(r"^\s*OpenAI\s*$")).click()
    page.locator("#id_api_key").wait_for(timeout=TIMEOUT)
    page.locator("#id_api_key").select_option(label=f"my openai key (…{SECRET[-4:]})")
    page.get_by_text("Custom Base URL").click()
    page.locator("#id_base_url").fill(fake.base_url)
    # A stored key goes to a custom base URL only once a saved profile points it there.
    page.get_by_role("button", name="Load models").click()
    page.get_by_text("saved profile that uses it").wait_for(timeout=TIMEOUT)
    assert not [r for r in fake.requests if r.path.endswith("/models")]
    page.get_by_label("Model", exact=True).fill("gpt-4o")
    page.get_by_label("Use as my default").check()
    shot("profile-form")
    page.get_by_role("button", name="Save profile").click()
    # The very first profile lands on the list with a way into a chat.
    page.wait_for_url(qtap_server.url("/settings/profiles/?first=1"))
    page.get_by_role("link", name=re.compile("Start chatting")).first.wait_for(timeout=TIMEOUT)
    saved = ConnectionProfile.objects.get(user=alice)
    page.goto(qtap_server.url(f"/settings/profiles/{saved.pk}/"))
    page.get_by_role("button", name="Load models").click()
    page.get_by_text("3 models loaded.").wait_for(timeout=TIMEOUT)
    options = page.locator("#model-options option").evaluate_all("els => els.map(e => e.value)")
    assert sorted(options) == ["gpt-4o", "gpt-4o-mini", "o3-mini"]
    page.goto(qtap_server.url("/settings/profiles/"))
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text("Connection works.").wait_for(timeout=TIMEOUT)
    shot("profile-tested")
    profile = ConnectionProfile.objects.get(user=alice)
    assert (profile.name, profile.model, profile.base_url, profile.is_default) == (
        "Fake OpenAI",
        "gpt-4o",
        fake.base_url,
        True,
    )


def test_stream_stop_and_regenerate(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    open_chat(page, qtap_server, setup)
    shot("empty-chat")

    fake.reply(["Hello", " there", ", my", " friend", "."], usage=(7, 5))
    fake.stream_delay = 0.25
    page.locator("#prompt").fill("first line")
    page.locator("#prompt").press("Shift+Enter")
    page.locator("#prompt").press_sequentially("second line")
    assert page.locator("#prompt").input_value() == "first line\nsecond line"
    page.locator("#prompt").press("Enter")
    reply = last_assistant(page)
    page.wait_for_function(
        "() => { const m = " + LAST + ";"
        " return !!m && m.classList.contains('status-streaming')"
        " && m.querySelector('.body').textContent.includes('Hello'); }",
        timeout=TIMEOUT,
    )
    assert reply.locator(".body").get_attribute("aria-live") == "polite"
    assert page.locator("#stop").is_visible()
    partial = reply.locator(".body").text_content()
    shot("streaming")
    reply.locator(".m-tokens", has_text="7 in / 5 out").wait_for(timeout=TIMEOUT)
    assert (
        partial != "Hello there, my friend."
        and reply.locator(".body").text_content().strip() == "Hello there, my friend."
    )
    assert fake.chat_requests[-1].json["messages"][-1]["content"] == "first line\nsecond line"
    assert page.locator(".msg-user .body").last.text_content() == "first line\nsecond line"
    shot("finished")

    fake.synthetic(600, delay=0.02, token="tok ")
    send(page, "tell me a long story")
    page.wait_for_function(
        f"() => {{ const m = {LAST}; return !!m && m.querySelector('.body').textContent.length > 40; }}",
        timeout=TIMEOUT,
    )
    page.keyboard.press("Escape")
    long_reply = last_assistant(page)
    long_reply.locator(".m-status", has_text="Stopped").wait_for(timeout=TIMEOUT)
    assert fake.disconnected.wait(5), "the upstream request was not closed by the stop"
    stopped = Message.objects.filter(chat=setup.chat, role="assistant").latest("id")
    assert stopped.status == "cancelled" and 0 < len(stopped.content) < len("tok ") * 600
    assert not page.locator("#stop").is_visible()
    shot("stopped")

    fake.reply(["A", " fresh", " answer"])
    fake.stream_delay = 0.0
    long_reply.get_by_role("button", name="Regenerate").click()
    page.locator("#messages .msg-assistant .body", has_text="A fresh answer").wait_for(timeout=TIMEOUT)
    page.wait_for_function(
        f"() => !document.getElementById('msg-{stopped.pk}')", timeout=TIMEOUT
    )  # the sibling it replaces leaves the screen
    regenerated = Message.objects.filter(chat=setup.chat, role="assistant").latest("id")
    assert regenerated.parent_id == stopped.parent_id and regenerated.content == "A fresh answer"
    shot("regenerated")


def test_attachments_reach_a_vision_provider_and_warn_for_others(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    connection_profile_create(
        user=setup.user, name="Text only", plugin="qtap-plugin-openai-compatible", model="local", base_url=fake.base_url
    )
    open_chat(page, qtap_server, setup)
    image = png()
    page.locator("#attach").set_input_files(files=[{"name": "red.png", "mimeType": "image/png", "buffer": image}])
    assert page.locator("#attach-warning").text_content() == ""
    page.locator("#profile").select_option(label="Text only (local)")
    page.locator("#pending-files .chip-reason", has_text="OpenAI-compatible does not take images.").wait_for(
        timeout=TIMEOUT
    )
    assert page.locator("#send").is_disabled()
    shot("refused")
    page.locator("#profile").select_option(label="fake (gpt-4o-mini)")
    assert page.locator("#attach-warning").text_content() == ""
    assert page.locator("#send").is_enabled()
    fake.reply(["A", " red", " square."])
    send(page, "What is in this picture?")
    last_assistant(page).locator(".body", has_text="A red square.").wait_for(timeout=TIMEOUT)
    shot("answered")
    content = fake.chat_requests[-1].json["messages"][-1]["content"]
    urls = [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]
    assert urls == ["data:image/png;base64," + base64.b64encode(image).decode()]
    thumbnail = page.locator(".msg-user .attachments li").last.locator("img")
    assert thumbnail.get_attribute("alt") == "red.png"


def test_generate_an_image_and_download_it(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    fake.image_bytes = png(96, 64, "blue")
    image_profile_create(
        user=setup.user,
        name="Pictures",
        plugin="qtap-plugin-openai",
        model="gpt-image-1",
        api_key=setup.key,
        base_url=fake.base_url,
        is_default=True,
    )
    open_chat(page, qtap_server, setup)
    page.get_by_text("Generate an image").click()
    page.get_by_label("Describe the image").fill("a blue rectangle")
    page.get_by_label("Size").select_option("1536x1024")
    shot("image-form")
    page.get_by_role("button", name="Generate", exact=True).click()
    figure = page.locator("#messages figure.gen-image").last
    figure.wait_for(timeout=TIMEOUT)
    page.wait_for_function(
        "() => { const i = [...document.querySelectorAll('#messages figure.gen-image img')].pop();"
        " return i && i.complete && i.naturalWidth === 96; }",
        timeout=TIMEOUT,
    )
    shot("image-shown")
    sent = next(r for r in fake.requests if r.path.endswith("/images/generations")).json
    assert sent["prompt"] == "a blue rectangle" and sent["size"] == "1536x1024"
    href = figure.get_by_role("link", name="Download").get_attribute("href")
    download = page.request.get(qtap_server.url(href))
    assert download.status == 200 and download.body() == fake.image_bytes
    page.reload()
    page.locator("#messages figure.gen-image img").first.wait_for(timeout=TIMEOUT)
    shot("image-after-reload")


def test_reload_mid_stream_continues_the_stream(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    tokens = [f"t{i} " for i in range(120)]
    fake.reply(tokens, usage=(4, 120))
    fake.stream_delay = 0.04
    open_chat(page, qtap_server, setup)
    send(page, "count for me")
    page.wait_for_function(
        f"() => {{ const m = {LAST}; return !!m && m.querySelector('.body').textContent.includes('t10 '); }}",
        timeout=TIMEOUT,
    )
    shot("before-reload")
    page.reload()
    wait_connected(page)
    reply = last_assistant(page)
    reply.locator(".body").wait_for(timeout=TIMEOUT)
    page.wait_for_function(
        "() => { const m = " + LAST + ";"
        " return !!m && m.classList.contains('status-streaming') && m.querySelector('.body').textContent.length > 0; }",
        timeout=TIMEOUT,
    )
    resumed_at = len(reply.locator(".body").text_content())
    shot("resumed")
    reply.locator(".m-tokens", has_text="4 in / 120 out").wait_for(timeout=TIMEOUT)
    text = reply.locator(".body").text_content().strip()
    assert text == "".join(tokens).strip()  # nothing lost, nothing doubled across the reload
    assert resumed_at < len(text)
    shot("finished")


def test_model_output_cannot_run_script(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    payload = [
        "<img src=x onerror=alert('img')>",
        "\n\n<script>alert('script')</script>",
        "\n\n[click me](javascript:alert('link'))",
        "\n\n<a href=\"javascript:alert('a')\">raw link</a>",
    ]
    fake.reply(payload)
    fake.stream_delay = 0.3
    open_chat(page, qtap_server, setup)
    send(page, "be evil")
    dangerous = (
        '() => document.querySelectorAll(\'#messages img[src="x"], #messages script, '
        '#messages a[href^="javascript"], #messages [onerror]\').length'
    )
    page.wait_for_function(
        f"() => {{ const m = {LAST}; return !!m && m.classList.contains('status-streaming'); }}", timeout=TIMEOUT
    )
    page.locator("#messages .msg-assistant .body", has_text="<script>").wait_for(timeout=TIMEOUT)
    assert page.evaluate(dangerous) == 0
    shot("streaming-payload")
    last_assistant(page).locator(".m-tokens").wait_for(state="attached", timeout=TIMEOUT)
    page.wait_for_function(
        f"() => {{ const m = {LAST}; return !!m && !m.classList.contains('status-streaming'); }}", timeout=TIMEOUT
    )
    assert page.evaluate(dangerous) == 0
    shot("finished-payload")
    page.reload()
    wait_connected(page)
    assert page.evaluate(dangerous) == 0
    page.wait_for_timeout(300)
    assert page.dialogs == []
    assert "<script>alert" in last_assistant(page).locator(".body").text_content()  # shown, as text
    shot("after-reload")


def test_works_at_360_px(qtap_server: Any, chromium: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any) -> None:
    context = chromium.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    shot = Shots(page, request.node.name)
    try:
        fake.reply(["A **short** reply with `code` and a long-unbreakable-" + "x" * 80])
        open_chat(page, qtap_server, setup)
        send(page, "hi")
        last_assistant(page).locator(".m-tokens").wait_for(timeout=TIMEOUT)
        paths = (
            f"/chats/{setup.chat.pk}/",
            "/settings/keys/",
            "/settings/profiles/",
            "/settings/profiles/new/",
            "/settings/image-profiles/",
            "/settings/plugins/",
        )
        for path in paths:
            page.goto(qtap_server.url(path))
            assert page.evaluate("() => window.innerWidth") == 360
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
            shot(path.strip("/").replace("/", "-") or "index")
        page.goto(qtap_server.url(f"/chats/{setup.chat.pk}/"))
        assert page.locator("#prompt").is_visible() and page.locator("#send").is_visible()
    finally:
        context.close()


def test_page_keyboard_focus_order_and_labels(qtap_server: Any, browser_page: Any, setup: ChatSetup) -> None:
    page = browser_page
    open_chat(page, qtap_server, setup)
    for label in ("Message", "Connection profile"):
        assert page.get_by_label(label, exact=True).count() == 1
    page.locator("#prompt").focus()
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()"))
    assert order[:3] == ["attach", "profile", "send"]
    assert json.loads(page.locator("#profile-info").text_content())


# Every websocket the page opens is kept in window.__sockets, so a test can cut the connection.
RECORD_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__refuse = 0;  // while > 0, new connections go to a closed port and fail
  window.WebSocket = function (url, protocols) {
    if (window.__refuse > 0) { window.__refuse -= 1; url = "ws://127.0.0.1:9/"; }
    const socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    window.__sockets.push(socket);
    return socket;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, { OPEN: 1, CLOSED: 3, CONNECTING: 0, CLOSING: 2 });
})();
"""


def test_reconnects_and_resumes_after_the_connection_drops(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    page.add_init_script(RECORD_SOCKETS)
    tokens = [f"r{i} " for i in range(80)]
    fake.reply(tokens, usage=(4, 80))
    fake.stream_delay = 0.04
    open_chat(page, qtap_server, setup)
    send(page, "keep counting")
    page.wait_for_function(
        f"() => {{ const m = {LAST}; return !!m && m.querySelector('.body').textContent.includes('r5 '); }}",
        timeout=TIMEOUT,
    )
    page.evaluate("() => window.__sockets[window.__sockets.length - 1].close()")
    page.get_by_text("reconnecting").wait_for(timeout=TIMEOUT)
    shot("disconnected")
    wait_connected(page)
    reply = last_assistant(page)
    reply.locator(".m-tokens", has_text="4 in / 80 out").wait_for(timeout=TIMEOUT)
    assert reply.locator(".body").text_content().strip() == "".join(tokens).strip()
    assert page.evaluate("() => window.__sockets.length") == 2
    shot("resumed-and-finished")

    # A reply that ends while the tab is away is completed from chat.state on reconnect.
    fake.reply(["Short", " and", " done."], usage=(2, 3))
    fake.stream_delay = 0.1
    send(page, "one more")
    page.wait_for_function(
        f"() => {{ const m = {LAST}; return !!m && m.querySelector('.body').textContent.includes('Short'); }}",
        timeout=TIMEOUT,
    )
    # Two failed attempts (backoff about 0.5 s, then 1 s) keep the tab away until the reply has ended.
    page.evaluate("() => { window.__refuse = 2; window.__sockets[window.__sockets.length - 1].close(); }")
    page.get_by_text("reconnecting").wait_for(timeout=TIMEOUT)
    wait_connected(page)
    assert page.evaluate("() => window.__sockets.length") == 5
    assert Message.objects.filter(chat=setup.chat, role="assistant").latest("id").status == "complete"
    last_assistant(page).locator(".m-tokens", has_text="2 in / 3 out").wait_for(timeout=TIMEOUT)
    assert last_assistant(page).locator(".body").text_content().strip() == "Short and done."
    assert not page.locator("#stop").is_visible()
    shot("finished-while-away")


def test_errors_are_inline_with_retry_and_reasoning_is_collapsed(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    fake.fail_with(503, "The engine is currently overloaded, please try again later", times=3)
    open_chat(page, qtap_server, setup)
    send(page, "hello?")
    error = last_assistant(page).locator(".msg-error")
    error.wait_for(timeout=TIMEOUT)
    assert "overloaded" in error.text_content() or "unavailable" in error.text_content()
    shot("error")
    fake.reply(["Back", " again."], reasoning=["First I think", " about it."])
    error.get_by_role("button", name="Retry").click()
    reply = last_assistant(page)
    reply.locator(".body", has_text="Back again.").wait_for(timeout=TIMEOUT)
    details = reply.locator("details.reasoning")
    assert details.is_visible() and details.get_attribute("open") is None
    assert reply.locator(".reasoning-text").text_content() == "First I think about it."
    assert page.locator("#messages .msg-error").count() == 0  # the failed reply gave way to the retry
    shot("retried")
    page.reload()
    details = last_assistant(page).locator("details.reasoning")
    details.locator("summary").click()
    assert last_assistant(page).locator(".reasoning-text").is_visible()
    shot("reasoning-open")
