"""The chat page while a reply is written, in Chromium against a live Daphne and a scripted OpenAI-dialect
upstream: the title follows the first message and a rename in every tab; a reply is drawn as Markdown
while it streams (an unfinished code fence as code), stays inert whatever it holds, and ends as the
server's own sanitised drawing with no jump; code blocks are highlighted, labelled and copied; Regenerate
waits for the end of the reply.

Screenshots of every step land in test-results/ui/<test>/.
"""

from __future__ import annotations

from typing import Any

import pytest

from qtap_site.chat.models import Message
from qtap_site.chat.rendering import render_markdown
from tests.fakes.openai_dialect import FakeOpenAI
from tests.security.test_rendering_xss import CORPUS
from tests.support.data import ChatSetup, chat_setup
from tests.ui.live import Shots
from tests.ui.test_browser import LAST, TIMEOUT, last_assistant, open_chat, send, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

STREAMING = f"() => {{ const m = {LAST}; return !!m && m.classList.contains('status-streaming'); }}"
ENDED = (
    f"() => {{ const m = {LAST}; return !!m && !m.classList.contains('status-streaming')"
    " && !!m.querySelector('.m-tokens'); }"
)
# What model output must never become in the page: script, handlers, script URLs, loaded resources.
DANGEROUS = """() => {
  const root = document.getElementById('messages');
  const bad = root.querySelectorAll(
    'script, img, iframe, object, embed, svg, math, form, style, video, source, base, meta');
  const handlers = [...root.querySelectorAll('*')].filter(
    el => [...el.attributes].some(a => a.name.startsWith('on')));
  const urls = [...root.querySelectorAll('[href], [src], [action]')].filter(el => /^\\s*(javascript|data|vbscript):/i
    .test(el.getAttribute('href') || el.getAttribute('src') || el.getAttribute('action') || ''));
  return bad.length + handlers.length + urls.length;
}"""


@pytest.fixture
def setup(alice: Any, fake: FakeOpenAI) -> ChatSetup:
    return chat_setup(alice, fake.base_url)  # untitled: its first message names it


def final_html_matches_server(page: Any, message: Message) -> bool:
    """The reply's body, as the browser holds it, is the server's sanitised drawing of its text (and the
    copy buttons the page adds to its code blocks)."""
    return bool(
        page.evaluate(
            """([id, html]) => { const t = document.createElement('div'); t.innerHTML = html;
                 const body = document.querySelector('#msg-' + id + ' .body').cloneNode(true);
                 body.querySelectorAll('.code-head > button.copy').forEach(b => b.remove());
                 return body.innerHTML === t.innerHTML; }""",
            [message.pk, render_markdown(message.content)],
        )
    )


def test_title_follows_the_first_message_and_a_rename_in_every_tab(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    other = page.context.new_page()
    open_chat(page, qtap_server, setup)
    other.goto(qtap_server.url(f"/chats/{setup.chat.pk}/"))
    wait_connected(other)
    assert page.locator("#chat-title").text_content() == "Untitled chat"
    fake.reply(["Bring", " a hat."])
    send(page, "Plan the garden party")
    item = f"#chat-item-{setup.chat.pk} > a"
    for tab in (page, other):
        tab.wait_for_function(
            f"""() => document.getElementById('chat-title').textContent === 'Plan the garden party'
                 && document.querySelector('{item}').textContent.trim() === 'Plan the garden party'""",
            timeout=TIMEOUT,
        )
    assert page.title().startswith("Plan the garden party")
    shot("titled")

    page.locator(f"#chat-item-{setup.chat.pk} summary").click()
    page.locator(f"#rename-{setup.chat.pk}").fill("Garden party, June")
    page.locator(f"#chat-item-{setup.chat.pk}").get_by_role("button", name="Rename").click()
    for tab in (page, other):
        tab.wait_for_function(
            f"""() => document.getElementById('chat-title').textContent === 'Garden party, June'
                 && document.querySelector('{item}').textContent.trim() === 'Garden party, June'""",
            timeout=TIMEOUT,
        )
    shot("renamed")
    other.close()


REPLY = [
    "# Party plan\n\n",
    "- cake\n- lemonade\n\n",
    "| item | cost |\n|------|------|\n| cake | 12 |\n\n",
    "```python\ndef cheer(n):\n    return 'hip ' * n\n",  # the fence is still open when the upstream pauses
    "```\n\nThat is **all**.",
]


def test_markdown_is_drawn_while_the_reply_streams_and_ends_as_the_server_draws_it(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    fake.reply(REPLY)
    fake.mid_stream(after=5, kind="stall", seconds=4)  # the role chunk and four pieces, then silence
    open_chat(page, qtap_server, setup)
    send(page, "plan it")
    page.wait_for_function(
        f"""() => {{ const m = {LAST}; if (!m || !m.classList.contains('status-streaming')) return false;
             const b = m.querySelector('.body');
             const code = b.querySelector('pre code');
             return !!(b.querySelector('h1') && b.querySelectorAll('ul > li').length === 2
                       && b.querySelector('table td') && code && code.textContent.includes("return 'hip '")); }}""",
        timeout=TIMEOUT,
    )
    body = last_assistant(page).locator(".body")
    assert body.locator("h1").text_content() == "Party plan"
    assert body.locator("table td").first.text_content() == "cake"
    assert body.locator(".code-block .code-lang").text_content() == "python"  # the open fence is code already
    assert "```" not in body.text_content()
    assert page.evaluate(STREAMING)
    shot("streaming-markdown")
    page.wait_for_function(ENDED, timeout=TIMEOUT)
    reply = Message.objects.filter(chat=setup.chat, role="assistant").latest("id")
    assert reply.content == "".join(REPLY)
    assert final_html_matches_server(page, reply)
    assert body.locator("strong").text_content() == "all"
    shot("finished")


def test_the_servers_drawing_replaces_the_streamed_one_without_a_jump(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    fake.reply(REPLY)
    fake.mid_stream(after=1 + len(REPLY), kind="stall", seconds=3)  # all the text, then a pause before the end
    open_chat(page, qtap_server, setup)
    send(page, "plan it")
    page.wait_for_function(
        f"() => {{ const m = {LAST}; return !!m && m.classList.contains('status-streaming')"
        " && !!m.querySelector('.body strong'); }",
        timeout=TIMEOUT,
    )
    page.wait_for_timeout(200)
    box = "() => { const b = " + LAST + ".querySelector('.body').getBoundingClientRect(); return [b.top, b.height]; }"
    streamed = page.evaluate(box)
    shot("streamed")
    page.wait_for_function(ENDED, timeout=TIMEOUT)
    ended = page.evaluate(box)
    assert abs(ended[0] - streamed[0]) <= 1 and abs(ended[1] - streamed[1]) <= 2, (streamed, ended)
    assert final_html_matches_server(page, Message.objects.filter(chat=setup.chat, role="assistant").latest("id"))
    shot("ended")


def test_hostile_markdown_stays_inert_while_streaming_and_after(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    pieces = [source + "\n\n" for source in CORPUS]
    fake.reply(pieces)
    fake.mid_stream(after=1 + len(pieces) // 2, kind="stall", seconds=3)
    open_chat(page, qtap_server, setup)
    send(page, "be evil")
    page.wait_for_function(STREAMING, timeout=TIMEOUT)
    page.locator("#messages .msg-assistant .body", has_text="<script>").first.wait_for(timeout=TIMEOUT)
    page.wait_for_timeout(300)
    assert page.evaluate(DANGEROUS) == 0
    assert page.evaluate(STREAMING)
    shot("streaming-payload")
    page.wait_for_function(ENDED, timeout=TIMEOUT)
    page.wait_for_timeout(300)
    assert page.evaluate(DANGEROUS) == 0
    page.reload()
    wait_connected(page)
    assert page.evaluate(DANGEROUS) == 0
    assert page.dialogs == []
    shot("after-reload")


def test_tool_panels_keep_their_place_in_a_markdown_reply(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI
) -> None:
    """Text streamed after a tool panel (placed in the reply as tool.call places it) is drawn after it."""
    page = browser_page
    fake.reply(["**Before** the call.\n\n", "After *it*."])
    fake.stream_delay = 0.7
    open_chat(page, qtap_server, setup)
    send(page, "use a tool")
    page.wait_for_function(f"() => !!{LAST} && !!{LAST}.querySelector('.body strong')", timeout=TIMEOUT)
    page.evaluate(
        "() => " + LAST + ".querySelector('.body').appendChild("
        "document.getElementById('tpl-tool-call').content.firstElementChild.cloneNode(true))"
    )
    page.wait_for_function(f"() => !!{LAST}.querySelector('.body em')", timeout=TIMEOUT)
    order = page.evaluate(f"() => [...{LAST}.querySelector('.body').children].map(c => c.className.split(' ')[0])")
    assert order == ["seg", "tool-call", "seg"]
    assert page.evaluate(STREAMING)


def test_code_blocks_are_highlighted_labelled_and_copied(
    qtap_server: Any, chromium: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=qtap_server.origin)
    page = context.new_page()
    shot = Shots(page, request.node.name)
    try:
        fake.reply(["Run this:\n\n```python\nimport os\nprint(os.getcwd())\n```\n\nand this:\n\n```\nplain text\n```"])
        open_chat(page, qtap_server, setup)
        send(page, "show code")
        page.wait_for_function(ENDED, timeout=TIMEOUT)
        reply = last_assistant(page)
        blocks = reply.locator(".code-block")
        assert blocks.count() == 2
        assert blocks.nth(0).locator(".code-lang").text_content() == "python"
        assert blocks.nth(1).locator(".code-lang").text_content() == "code"
        keyword = blocks.nth(0).locator("pre code span.kn").first  # Pygments: import is a namespace keyword
        assert keyword.text_content() == "import"
        assert keyword.evaluate("e => getComputedStyle(e).color") != reply.evaluate("e => getComputedStyle(e).color")
        assert blocks.nth(0).get_by_role("button", name="Copy").count() == 1
        blocks.nth(0).get_by_role("button", name="Copy").click()
        page.wait_for_function("() => navigator.clipboard.readText().then(t => t === 'import os\\nprint(os.getcwd())')")
        assert blocks.nth(0).get_by_role("button", name="Copied").count() == 1
        reply.locator(".meta").get_by_role("button", name="Copy").click()
        copied = page.evaluate("() => navigator.clipboard.readText()")
        assert copied.startswith("Run this:") and "plain text" in copied
        shot("code-blocks")
    finally:
        context.close()


def test_regenerate_is_hidden_while_the_reply_streams(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    fake.reply(["Slow", " and", " steady."])
    fake.mid_stream(after=2, kind="stall", seconds=3)
    open_chat(page, qtap_server, setup)
    send(page, "take your time")
    page.wait_for_function(STREAMING, timeout=TIMEOUT)
    page.locator("#messages .msg-assistant .body", has_text="Slow").wait_for(timeout=TIMEOUT)
    regenerate = last_assistant(page).locator(".meta [data-action=regenerate]")
    assert regenerate.count() == 1 and not regenerate.is_visible()
    shot("streaming")
    page.wait_for_function(ENDED, timeout=TIMEOUT)
    assert last_assistant(page).get_by_role("button", name="Regenerate").is_visible()
    # A tab that joins mid-stream hides it too.
    fake.mid_stream(after=2, kind="stall", seconds=3)
    send(page, "again")
    page.wait_for_function(STREAMING, timeout=TIMEOUT)
    page.locator("#messages .msg-assistant .body", has_text="Slow").nth(1).wait_for(timeout=TIMEOUT)
    page.reload()
    page.wait_for_function(STREAMING, timeout=TIMEOUT)
    assert not last_assistant(page).locator(".meta [data-action=regenerate]").is_visible()
    page.wait_for_function(ENDED, timeout=TIMEOUT)
    assert last_assistant(page).get_by_role("button", name="Regenerate").is_visible()
    shot("ended")
