"""Tool calls in the chat page, in Chromium against a live Daphne: a call's panel inline in the streaming
reply and in the server's drawing of it at the end, approve and deny, tool output kept inert, and the
chat's Tools switches saved and shown again after a reload.

The live server is a separate Daphne process (tests.ui.live), so a test plugin registered in this process
(``registry.temporarily``) would not reach it. The test tools reach it as a local plugin instead: a plugins
folder on QTAP_PLUGINS_DIR holding the bundled ones (``dist/``) and ``qtap-plugin-test-tools``, whose
``__init__.py`` exports tests.chat.tool_support's ToolsPlugin. Its calls are checked through the
database (ToolCall rows) and through what the scripted upstream was sent.

Screenshots of every step land in test-results/ui/<test>/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from providers.manifest import MANIFEST_FILENAME, parse_manifest
from providers.services import api_key_create, connection_profile_create
from qtap_site.chat.models import Chat, Message, ToolCall
from qtap_site.chat.services import chat_create
from tests.chat.tool_support import TOOL_PLUGIN, ScriptedUpstream, tool_plugin
from tests.support.processes import REPO
from tests.ui.live import PASSWORD, Shots, live_server, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

TIMEOUT = 15_000  # ms
COMPATIBLE = "qtap-plugin-openai-compatible"
LAST = "[...document.querySelectorAll('#messages .msg-assistant')].pop()"  # the newest reply, in page JS
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"

# The manifest of tool_support.tool_plugin(), as the plugin folder's manifest.json.
MANIFEST = {
    "name": TOOL_PLUGIN,
    "title": "Test tools",
    "version": "1.0.0",
    "capabilities": ["TOOL_PROVIDER"],
    "toolConfig": {
        "tools": [{"name": "echo", "displayName": "Echo", "description": "Answers its text."}],
        "dynamicTools": True,
        "timeoutSeconds": 1,
    },
}

PLUGIN_INIT = f'''"""The tool-loop tests' tools (tests.chat.tool_support), as a local plugin of a live test server."""

import sys

if {str(REPO)!r} not in sys.path:
    sys.path.insert(0, {str(REPO)!r})

from tests.chat.tool_support import ToolsPlugin

plugin = ToolsPlugin()
'''


@pytest.fixture(scope="module")
def plugins_dir(tmp_path_factory: Any) -> Path:
    """A plugins folder like the real one (the bundled plugins in ``dist/``) plus the test tools."""
    assert parse_manifest(MANIFEST) == tool_plugin().manifest  # the very plugin the tool-loop tests use
    root = tmp_path_factory.mktemp("tool-plugins")
    (root / "dist").symlink_to(REPO / "plugins" / "dist", target_is_directory=True)
    folder = root / TOOL_PLUGIN
    folder.mkdir()
    (folder / MANIFEST_FILENAME).write_text(json.dumps(MANIFEST, indent=2))
    (folder / "__init__.py").write_text(PLUGIN_INIT)
    return root


@pytest.fixture(scope="module")
def tools_server(django_db_setup: None, django_db_blocker: Any, plugins_dir: Path) -> Iterator[Any]:
    with live_server({"QTAP_PLUGINS_DIR": str(plugins_dir)}) as server:
        yield server


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream([{"text": "Done."}]) as server:
        yield server


@pytest.fixture
def tool_chat(alice: Any, upstream: ScriptedUpstream) -> Chat:
    key = api_key_create(user=alice, plugin=COMPATIBLE, label="proxy", secret=upstream.api_key)
    profile = connection_profile_create(
        user=alice,
        name="Tools",
        plugin=COMPATIBLE,
        model="tool-model",
        api_key=key,
        base_url=upstream.base_url,
        is_default=True,
    )
    chat = chat_create(user=alice, profile=profile, title="Tool chat")
    chat.tools = [TOOL_PLUGIN]
    chat.save(update_fields=["tools"])
    return chat


def calls(*items: tuple[str, str, Any]) -> dict[str, Any]:
    return {"calls": [(cid, name, args if isinstance(args, str) else json.dumps(args)) for cid, name, args in items]}


def open_chat(page: Any, server: Any, chat: Chat) -> None:
    sign_in(page, server)
    page.goto(server.url(f"/chats/{chat.pk}/"))
    wait_connected(page)


def wait_connected(page: Any) -> None:
    page.wait_for_function("() => document.getElementById('conn-status').textContent === 'Connected'", timeout=TIMEOUT)


def send(page: Any, text: str) -> None:
    page.locator("#prompt").fill(text)
    page.locator("#prompt").press("Enter")


def wait_finished(page: Any) -> Any:
    """The newest reply once the server's drawing of its end replaced the streamed one."""
    page.wait_for_function(
        f"() => {{ const m = {LAST}; return !!m && m.classList.contains('status-complete'); }}", timeout=TIMEOUT
    )
    assert page.locator("#stop").is_hidden()
    return page.locator("#messages .msg-assistant").last


def panel_of(page: Any, call_id: str) -> Any:
    return page.locator(f"#messages .msg-assistant .tool-call[data-call-id='{call_id}']")


def neighbours(page: Any, call_id: str) -> dict[str, Any]:
    """What stands around a call's panel in its reply's body: the text before and after it, and where."""
    return page.evaluate(
        """(id) => {
            const panel = document.querySelector(`#messages .tool-call[data-call-id="${id}"]`);
            const body = panel.closest('.body');
            const before = [], after = [];
            let seen = false;
            body.childNodes.forEach((n) => {
                if (n === panel) { seen = true; return; }
                (seen ? after : before).push(n.textContent);
            });
            return {
                before: before.join('').trim(), after: after.join('').trim(),
                inBody: panel.parentElement === body, open: panel.open,
                panels: body.querySelectorAll('.tool-call').length,
            };
        }""",
        call_id,
    )


def test_an_echo_call_shows_inline_expands_and_stays_between_the_turns(
    tools_server: Any, browser_page: Any, tool_chat: Chat, upstream: ScriptedUpstream, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    upstream.turns = [
        {"text": "Let me check.", **calls(("call_echo", "echo", {"text": "hi there"}))},
        {"text": "It said hi there."},
    ]
    upstream.stream_delay = 0.6  # the second turn streams for a couple of seconds after the result
    open_chat(page, tools_server, tool_chat)
    send(page, "Use the echo tool.")

    # While the reply streams: the call's panel, inline after the first turn's text, collapsed.
    page.wait_for_function(
        "() => { const m = " + LAST + "; if (!m || !m.classList.contains('status-streaming')) return false;"
        " const p = m.querySelector('.tool-call[data-call-id=\"call_echo\"]');"
        " return !!p && p.querySelector('.tool-result').textContent === 'echo: hi there'; }",
        timeout=TIMEOUT,
    )
    panel = panel_of(page, "call_echo")
    assert panel.locator(".tool-name").is_visible() and panel.locator(".tool-name").text_content() == "echo"
    assert panel.locator(".tool-status").text_content() == "done"
    assert panel.locator(".tool-arguments").is_hidden() and panel.locator(".tool-result").is_hidden()
    assert panel.locator(".tool-approval").is_hidden()
    around = neighbours(page, "call_echo")
    assert around["inBody"] and around["before"] == "Let me check." and around["open"] is False
    shot("streaming-collapsed")
    panel.locator("summary").click()
    assert panel.evaluate("p => p.open") is True
    assert json.loads(panel.locator(".tool-arguments").text_content()) == {"text": "hi there"}
    assert panel.locator(".tool-result").is_visible()
    shot("streaming-expanded")

    # At the end the server's drawing replaces it: the panel sits between the two turns' text.
    reply = wait_finished(page)
    reply.locator(".body", has_text="It said hi there.").wait_for(timeout=TIMEOUT)
    around = neighbours(page, "call_echo")
    assert (around["before"], around["after"], around["inBody"], around["panels"]) == (
        "Let me check.",
        "It said hi there.",
        True,
        1,
    )
    panel = panel_of(page, "call_echo")
    assert panel.locator(".tool-name").text_content() == "echo"
    assert panel.locator(".tool-status").text_content() == "done"
    assert panel.locator(".tool-duration").text_content().endswith(" ms")
    if around["open"]:  # (the server's drawing does not keep a panel opened while the reply streamed)
        panel.locator("summary").click()
    assert panel.locator(".tool-arguments").is_hidden()
    panel.locator("summary").click()
    assert json.loads(panel.locator(".tool-arguments").text_content()) == {"text": "hi there"}
    assert panel.locator(".tool-result").is_visible()
    assert panel.locator(".tool-result").text_content() == "echo: hi there"
    panel.scroll_into_view_if_needed()
    shot("finished-expanded")

    message = Message.objects.filter(chat=tool_chat, role="assistant").latest("id")
    row = ToolCall.objects.get(message=message)
    assert (row.call_id, row.name, row.status, row.result) == ("call_echo", "echo", "complete", "echo: hi there")
    second = upstream.chat_requests[-1]
    assert [m for m in second["messages"] if m["role"] == "tool"] == [
        {"role": "tool", "tool_call_id": "call_echo", "content": "echo: hi there"}
    ]

    # The drawing of the page itself (a reload) shows the same.
    page.reload()
    wait_connected(page)
    assert neighbours(page, "call_echo")["after"] == "It said hi there."
    assert panel_of(page, "call_echo").locator(".tool-result").text_content() == "echo: hi there"
    assert page.dialogs == []


def test_a_guarded_call_waits_for_approve_or_deny(
    tools_server: Any, browser_page: Any, tool_chat: Chat, upstream: ScriptedUpstream, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    upstream.turns = [
        {"text": "I need your go-ahead.", **calls(("call_ok", "guarded", {"text": "launch"}))},
        {"text": "Launched as approved."},
    ]
    open_chat(page, tools_server, tool_chat)
    send(page, "Launch it.")

    panel = panel_of(page, "call_ok")
    panel.locator(".tool-approval").wait_for(state="visible", timeout=TIMEOUT)
    assert panel.evaluate("p => p.open") is True  # a call waiting for the user opens itself
    assert panel.locator(".tool-status").text_content() == "waiting for your approval"
    assert panel.locator(".tool-name").text_content() == "guarded"
    assert json.loads(panel.locator(".tool-arguments").text_content()) == {"text": "launch"}
    assert page.locator("#stop").is_visible()
    assert len(upstream.chat_requests) == 1  # nothing goes on before the user says so
    assert ToolCall.objects.get(call_id="call_ok").status == "awaiting_approval"
    shot("awaiting-approval")

    # A reload while the call waits: the page draws it again, still waiting, the buttons at hand.
    page.reload()
    wait_connected(page)
    panel = panel_of(page, "call_ok")
    panel.locator(".tool-approval").wait_for(state="visible", timeout=TIMEOUT)
    assert panel.locator(".tool-status").text_content() == "waiting for your approval"
    assert neighbours(page, "call_ok")["before"] == "I need your go-ahead."
    assert page.locator("#stop").is_visible()
    panel.get_by_role("button", name="Approve").click()

    reply = wait_finished(page)
    reply.locator(".body", has_text="Launched as approved.").wait_for(timeout=TIMEOUT)
    panel = panel_of(page, "call_ok")
    assert panel.locator(".tool-status").text_content() == "done"
    assert panel.locator(".tool-approval").is_hidden()
    assert panel.locator(".tool-result").text_content() == "echo: launch"
    assert neighbours(page, "call_ok")["before"] == "I need your go-ahead."
    assert ToolCall.objects.get(call_id="call_ok").status == "complete"
    assert upstream.chat_requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_ok",
        "content": "echo: launch",
    }
    panel.locator("summary").click()
    shot("approved")

    # Another run, the same kind of call: this time the user says no.
    upstream.requests.clear()
    upstream.turns = [
        {"text": "Once more?", **calls(("call_no", "guarded", {"text": "launch again"}))},
        {"text": "Understood, not launching."},
    ]
    send(page, "Launch it again.")
    panel = panel_of(page, "call_no")
    panel.locator(".tool-approval").wait_for(state="visible", timeout=TIMEOUT)
    panel.get_by_role("button", name="Deny").click()
    assert panel.locator(".tool-approval").is_hidden()

    reply = wait_finished(page)
    reply.locator(".body", has_text="Understood, not launching.").wait_for(timeout=TIMEOUT)
    panel = panel_of(page, "call_no")
    assert panel.locator(".tool-status").text_content() == "denied"
    assert "tool-denied" in (panel.get_attribute("class") or "").split()
    assert panel.locator(".tool-approval").is_hidden()
    panel.locator("summary").click()
    assert panel.locator(".tool-result").text_content() == "The user denied this call; do not try it again."
    assert panel_of(page, "call_ok").locator(".tool-status").text_content() == "done"  # the first one is kept
    row = ToolCall.objects.get(call_id="call_no")
    assert row.status == "denied" and row.is_error
    tool_reply = upstream.chat_requests[-1]["messages"][-1]
    assert tool_reply["role"] == "tool" and tool_reply["tool_call_id"] == "call_no"
    assert "denied" in tool_reply["content"]
    panel.scroll_into_view_if_needed()
    shot("denied")
    assert page.dialogs == []


# Every WebSocket the page opens is kept in window.__sockets; while window.__hold is set, new ones go to
# a port nobody listens on (they fail at once, and the page keeps retrying).
TRACK_SOCKETS = """
(() => {
  const Real = window.WebSocket;
  window.__sockets = [];
  window.__hold = false;
  function Tracked(url, protocols) {
    const socket = new Real(window.__hold ? "ws://127.0.0.1:9/" : url, protocols);
    window.__sockets.push(socket);
    return socket;
  }
  Tracked.prototype = Real.prototype;
  ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach((k) => { Tracked[k] = Real[k]; });
  window.WebSocket = Tracked;
})();
"""


def test_an_approval_clicked_while_disconnected_is_not_lost(
    tools_server: Any, browser_page: Any, tool_chat: Chat, upstream: ScriptedUpstream, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    page.add_init_script(TRACK_SOCKETS)
    upstream.turns = [
        {"text": "May I?", **calls(("call_late", "guarded", {"text": "late"}))},
        {"text": "Done after the reconnect."},
    ]
    open_chat(page, tools_server, tool_chat)
    send(page, "Go.")
    panel = panel_of(page, "call_late")
    panel.locator(".tool-approval").wait_for(state="visible", timeout=TIMEOUT)

    page.evaluate("() => { window.__hold = true; window.__sockets.at(-1).close(); }")
    page.wait_for_function(
        "() => document.getElementById('conn-status').textContent.startsWith('Disconnected')", timeout=TIMEOUT
    )
    panel.get_by_role("button", name="Approve").click()
    # Nothing could be sent: the buttons stay for the user to try again, and the call still waits.
    assert panel.locator(".tool-approval").is_visible()
    assert panel.get_by_role("button", name="Approve").is_visible()
    assert ToolCall.objects.get(call_id="call_late").status == "awaiting_approval"
    shot("clicked-while-disconnected")

    page.evaluate("() => { window.__hold = false; }")
    wait_connected(page)
    panel = panel_of(page, "call_late")
    panel.get_by_role("button", name="Approve").click()
    wait_finished(page).locator(".body", has_text="Done after the reconnect.").wait_for(timeout=TIMEOUT)
    assert panel_of(page, "call_late").locator(".tool-result").text_content() == "echo: late"
    assert ToolCall.objects.get(call_id="call_late").status == "complete"
    shot("approved-after-reconnect")


def test_hostile_tool_output_stays_inert_text(
    tools_server: Any, browser_page: Any, tool_chat: Chat, upstream: ScriptedUpstream, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    upstream.turns = [
        {
            "text": "Echoing.",
            **calls(
                ("call_x", "echo", {"text": HOSTILE}),
                ("call_y", "<img src=x onerror=alert(3)>", {"text": HOSTILE}),  # no such tool: a refused call
            ),
        },
        {"text": "All echoed."},
    ]
    upstream.stream_delay = 0.3
    open_chat(page, tools_server, tool_chat)
    send(page, "Echo this markup.")

    def check(stage: str) -> None:
        for call_id in ("call_x", "call_y"):
            panel = panel_of(page, call_id)
            assert panel.locator("img, script, iframe, svg, object").count() == 0, stage
            assert json.loads(panel.locator(".tool-arguments").text_content()) == {"text": HOSTILE}, stage
        good, refused = panel_of(page, "call_x"), panel_of(page, "call_y")
        assert good.locator(".tool-result").text_content() == "echo: " + HOSTILE, stage
        assert refused.locator(".tool-name").text_content() == "<img src=x onerror=alert(3)>", stage
        assert refused.locator(".tool-status").text_content() == "failed", stage
        assert "There is no tool named '<img src=x onerror=alert(3)>'" in refused.locator(".tool-result").text_content()
        assert page.locator("#messages img, #messages script").count() == 0, stage
        good.locator("summary").click()
        assert good.locator(".tool-result").inner_text() == "echo: " + HOSTILE, stage  # shown as written
        good.locator("summary").click()

    page.wait_for_function(
        "() => { const m = " + LAST + "; if (!m || !m.classList.contains('status-streaming')) return false;"
        " const ps = m.querySelectorAll('.tool-call');"
        " return ps.length === 2 && [...ps].every(p => p.querySelector('.tool-result').textContent !== ''); }",
        timeout=TIMEOUT,
    )
    check("streaming")
    wait_finished(page).locator(".body", has_text="All echoed.").wait_for(timeout=TIMEOUT)
    check("finished")
    panel_of(page, "call_x").locator("summary").click()
    shot("finished")
    page.reload()
    wait_connected(page)
    check("reloaded")
    page.wait_for_timeout(500)  # an onerror would have fired by now
    assert dialogs == [] and page.dialogs == []
    assert ToolCall.objects.get(call_id="call_x").result == "echo: " + HOSTILE


def test_the_tools_switch_saves_and_shows_after_a_reload(
    tools_server: Any, browser_page: Any, tool_chat: Chat, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    open_chat(page, tools_server, tool_chat)
    tools = page.locator("#chat-tools")
    assert tools.is_visible()
    assert "All tools of Test tools" in tools.locator("summary").text_content()
    tools.locator("summary").click()
    whole = tools.locator(f"input[name=tool][value='{TOOL_PLUGIN}']")
    echo = tools.locator("input[name=tool][value='echo']")
    assert whole.is_checked() and not echo.is_checked()
    assert tools.get_by_text("This chat's own choice.").is_visible()
    shot("before")

    whole.uncheck()
    tools.get_by_role("button", name="Save tools").click()
    page.wait_for_function(
        "() => !document.querySelector('#chat-tools summary').textContent.includes('Test tools')", timeout=TIMEOUT
    )
    assert Chat.objects.get(pk=tool_chat.pk).tools == []
    page.reload()
    wait_connected(page)
    tools = page.locator("#chat-tools")
    assert tools.locator("summary").text_content().strip() == "Tools"
    tools.locator("summary").click()
    assert not tools.locator(f"input[name=tool][value='{TOOL_PLUGIN}']").is_checked()
    assert not tools.locator("input[name=tool][value='echo']").is_checked()
    shot("all-off")

    tools.locator("input[name=tool][value='echo']").check()
    tools.get_by_role("button", name="Save tools").click()
    page.wait_for_function(
        "() => document.querySelector('#chat-tools summary').textContent.includes('Echo')", timeout=TIMEOUT
    )
    assert Chat.objects.get(pk=tool_chat.pk).tools == ["echo"]
    page.reload()
    wait_connected(page)
    tools = page.locator("#chat-tools")
    assert "· Echo" in tools.locator("summary").text_content()
    tools.locator("summary").click()
    assert tools.locator("input[name=tool][value='echo']").is_checked()
    assert not tools.locator(f"input[name=tool][value='{TOOL_PLUGIN}']").is_checked()
    shot("echo-on")
    assert page.dialogs == []
