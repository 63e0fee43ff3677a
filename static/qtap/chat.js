// qtap chat page: the websocket client of /ws/chats/<id>/ (SPEC §5).
// The server draws every message (qtap_site.chat.rendering): the page swaps in its `message_html`
// (message.created, chat.state, generation.finished, generation.error), already sanitised. While a
// reply streams, its text arrives untrusted: it is drawn as Markdown by the vendored marked, with raw
// HTML escaped, then sanitised by the vendored DOMPurify to the server's own allow-list (no images, no
// classes but a code block's language, http/https/mailto links); without them it is appended as text.
// At the end the server's drawing replaces it.
(function () {
  "use strict";
  var root = document.getElementById("chat");
  if (!root) return;

  var $ = function (id) { return document.getElementById(id); };
  var messages = $("messages"), prompt = $("prompt"), composer = $("composer");
  var sendBtn = $("send"), stopBtn = $("stop"), status = $("conn-status");
  var warning = $("attach-warning");
  var profileSelect = $("profile"), imageForm = $("imagegen");
  // The files to send, and whether the profile takes them, are attachments.js's (the composer's chips).
  var attached = window.qtapAttachments || { files: function () { return []; }, problem: function () { return ""; }, clear: function () {} };

  var socket = null, retries = 0, closedForGood = false, pingTimer = null;
  var lastFrameAt = Date.now();   // when the socket last brought news (pongs do not count)
  var silenceLimit = Number(root.dataset.silenceLimit || 35) * 1000;
  var running = null;          // message id of the generation in progress
  var lastSeq = {};            // message id -> last seq applied (duplicates after a resume are dropped)
  var msgCounter = 0;
  var lastImagePrompt = "";    // caption of generated images when the provider revised nothing
  var sources = {};            // message id -> raw text of its last segment (the Markdown drawn so far)
  var touch = window.matchMedia && matchMedia("(pointer: coarse)").matches;  // Enter makes a new line there
  // Opened at a search result's message (#message-<id>, search.js scrolls to it): the page is not
  // scrolled to the bottom on load.
  var anchored = /^#message-\d+$/.test(location.hash);

  function csrfToken() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function setStatus(text) { status.textContent = text; }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      setStatus("Not connected — reconnecting…");
      return false;
    }
    socket.send(JSON.stringify(frame));
    return true;
  }

  function setRunning(id) {
    running = id;
    stopBtn.hidden = id === null;
    refreshSend();
  }

  // Send waits for a reply in progress, a chat being made, and files the profile does not take.
  function refreshSend() { sendBtn.disabled = running !== null || creating || !!attached.problem(); }

  function scrollDown() { messages.scrollTop = messages.scrollHeight; window.scrollTo(0, document.body.scrollHeight); }

  function text(el, value) { el.textContent = value == null ? "" : String(value); }

  // ---- message elements -------------------------------------------------------------------

  function findMsg(id) { return document.getElementById("msg-" + id); }

  // A branch no longer shown: the message and everything drawn after it leave the page.
  function cutFrom(el) {
    while (el) { var next = el.nextElementSibling; el.remove(); el = next; }
  }

  // The siblings of a message (edits, regenerations) that the page shows instead of it: they and what
  // follows them give way to it.
  function cutSiblings(m) {
    (m.siblings || []).forEach(function (id) { if (id !== m.id && findMsg(id)) cutFrom(findMsg(id)); });
  }

  // The server's drawing of a message in place of what the page shows for it (or added at the end).
  function draw(id, html) {
    var holder = document.createElement("template");
    holder.innerHTML = html || "";
    var el = holder.content.firstElementChild;
    if (!el) return findMsg(id);
    var old = findMsg(id);
    if (old) {
      // Tool panels the reader opened stay open in the new drawing.
      Array.prototype.forEach.call(old.querySelectorAll("details.tool-call[open]"), function (was) {
        Array.prototype.forEach.call(el.querySelectorAll("details.tool-call"), function (now) {
          if (now.dataset.callId === was.dataset.callId) now.open = true;
        });
      });
      old.replaceWith(el);
    } else messages.appendChild(el);
    addCopyButtons(el);
    return el;
  }

  // The element a streaming reply's text goes into: its drawing, or the server's blank one
  // (#tpl-assistant) for a reply whose start this tab did not see.
  function streamingMessage(id) {
    var el = findMsg(id);
    if (el) return el;
    el = $("tpl-assistant").content.firstElementChild.cloneNode(true);
    el.id = "msg-" + id;
    el.dataset.id = id;
    el.querySelector("[data-action=regenerate]").dataset.messageId = id;
    messages.appendChild(el);
    return el;
  }

  function appendText(container, value) {
    container.appendChild(document.createTextNode(value));
  }

  // ---- Markdown while a reply streams ---------------------------------------------------------

  var TAGS = ["a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul"];
  var canDraw = !!(window.marked && window.DOMPurify && DOMPurify.isSupported);
  var escapeHtml = function (s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  };
  if (canDraw) {
    // As on the server: raw HTML in the text is shown as text, never parsed.
    marked.use({ gfm: true, breaks: false, renderer: { html: function (t) { return escapeHtml(t.text || t.raw || ""); } } });
    DOMPurify.addHook("afterSanitizeAttributes", function (node) {
      if (node.hasAttribute("class") && !(node.nodeName === "CODE" && /^language-[\w+#.-]+$/.test(node.getAttribute("class")))) {
        node.removeAttribute("class");
      }
      if (node.nodeName === "A") node.setAttribute("rel", "noopener noreferrer nofollow");
    });
  }

  // Markdown source → sanitised nodes, each code block behind the header the server gives it.
  function markdownNodes(source) {
    var frag = DOMPurify.sanitize(marked.parse(source, { async: false }).replace(/\s+$/, ""), {
      ALLOWED_TAGS: TAGS, ALLOWED_ATTR: ["href", "title", "class", "start"],
      ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i, RETURN_DOM_FRAGMENT: true
    });
    Array.prototype.forEach.call(frag.querySelectorAll("pre"), function (pre) {
      var code = pre.querySelector("code");
      var m = code && /^language-(.+)$/.exec(code.getAttribute("class") || "");
      var box = document.createElement("div"), head = document.createElement("div");
      var label = document.createElement("span");
      box.className = "code-block"; head.className = "code-head"; label.className = "code-lang";
      label.textContent = m ? m[1] : "code";
      head.appendChild(label);
      pre.replaceWith(box); box.appendChild(head); box.appendChild(pre);
    });
    addCopyButtons(frag);
    return frag;
  }

  // Each code block's copy button (the server's drawing names the language; the control is the page's).
  function addCopyButtons(scope) {
    Array.prototype.forEach.call(scope.querySelectorAll(".code-head"), function (head) {
      if (head.querySelector(".copy")) return;
      var copy = document.createElement("button");
      copy.type = "button"; copy.className = "link copy"; copy.dataset.action = "copy-code"; copy.textContent = "Copy";
      head.appendChild(copy);
    });
  }

  // The body's last text segment (after the last tool panel): where streamed text goes.
  function lastSegment(body) {
    var last = body.lastElementChild;
    if (last && last.classList.contains("seg")) return last;
    var seg = document.createElement("div");
    seg.className = "seg";
    body.appendChild(seg);
    return seg;
  }

  function drawSegment(seg, source) {
    if (!canDraw) { text(seg, source); return; }
    seg.textContent = "";
    seg.appendChild(markdownNodes(source));
  }

  var dirty = [];  // segments waiting for the next frame
  function redrawSoon(seg, source) {
    seg._source = source;
    if (dirty.indexOf(seg) < 0) dirty.push(seg);
    if (dirty.length === 1) requestAnimationFrame(function () {
      var now = dirty; dirty = [];
      now.forEach(function (s) { if (s.isConnected) drawSegment(s, s._source); });
      scrollDown();
    });
  }

  function appendMarkdown(el, value) {
    var body = el.querySelector(".body");
    var seg = lastSegment(body);
    seg._source = (seg._source || "") + value;
    redrawSoon(seg, seg._source);
  }

  function markStreaming(el, on) {
    var body = el.querySelector(".body");
    el.classList.toggle("status-streaming", on);
    // A reply still being written cannot be regenerated yet.
    Array.prototype.forEach.call(el.querySelectorAll(".meta [data-action=regenerate]"), function (b) { b.hidden = on; });
    if (on) { body.setAttribute("aria-live", "polite"); body.setAttribute("aria-busy", "true"); }
    else { body.removeAttribute("aria-busy"); body.removeAttribute("aria-live"); }
  }

  function showReasoning(el, value, replace) {
    var box = el.querySelector(".reasoning");
    if (!box) return;
    var target = box.querySelector(".reasoning-text");
    if (replace) text(target, value); else appendText(target, value);
    box.hidden = target.textContent.length === 0;
  }

  // ---- tool calls (their words are untrusted: set as text, never as HTML) ---------------------

  var TOOL_STATUS = { awaiting_approval: "waiting for your approval", running: "running…", complete: "done",
    error: "failed", denied: "denied", cancelled: "cancelled" };

  function toolPanel(el, call) {
    var body = el.querySelector(".body");
    var panel = null;
    Array.prototype.forEach.call(body.querySelectorAll(".tool-call"), function (p) {
      if (p.dataset.callId === String(call.call_id)) panel = p;
    });
    if (!panel) {
      panel = $("tpl-tool-call").content.firstElementChild.cloneNode(true);
      panel.dataset.callId = call.call_id;
      Array.prototype.forEach.call(panel.querySelectorAll("[data-call-id]"), function (b) { b.dataset.callId = call.call_id; });
      body.appendChild(panel);  // text that follows goes into a new segment after it
    }
    return panel;
  }

  function showToolCall(el, call) {
    var panel = toolPanel(el, call);
    var status = call.status || (call.needs_approval ? "awaiting_approval" : "running");
    if (call.name != null) text(panel.querySelector(".tool-name"), call.name);
    if (call.arguments !== undefined) text(panel.querySelector(".tool-arguments"), JSON.stringify(call.arguments || {}, null, 2));
    if (call.content != null) text(panel.querySelector(".tool-result"), call.content);
    if (call.duration_ms != null) text(panel.querySelector(".tool-duration"), call.duration_ms + " ms");
    panel.className = "tool-call tool-" + status;
    text(panel.querySelector(".tool-status"), TOOL_STATUS[status] || status);
    panel.querySelector(".tool-approval").hidden = status !== "awaiting_approval";
    if (status === "awaiting_approval") panel.open = true;
    return panel;
  }

  // A reply in progress as chat.state gives it: its text, with each call where its turn ended.
  function drawProgress(el, gen) {
    var body = el.querySelector(".body");
    var content = gen.content || "";
    var pos = 0;
    text(body, "");
    (gen.tool_calls || []).slice().sort(function (a, b) { return a.offset - b.offset; }).forEach(function (c) {
      if (c.offset > pos) { drawSegment(lastSegment(body), content.slice(pos, c.offset)); pos = c.offset; }
      showToolCall(el, c);
    });
    var seg = lastSegment(body);
    seg._source = content.slice(pos);
    drawSegment(seg, seg._source);
  }

  function notice(message) {
    var p = document.createElement("p");
    p.className = "notice";
    p.setAttribute("role", "alert");
    text(p, message);
    messages.appendChild(p);
    scrollDown();
  }

  // ---- server events ----------------------------------------------------------------------

  var handlers = {
    "chat.state": function (data) {
      if (data.chat && data.chat.title) showTitle(data.chat);
      // After a reconnect the tail brings what was missed: new messages, and the end of a reply
      // that finished (or failed) while this tab was away.
      (data.messages_tail || []).forEach(function (m) {
        cutSiblings(m);  // another tab picked another branch meanwhile
        var el = findMsg(m.id);
        if (m.status === "streaming") { if (!el) draw(m.id, m.message_html); return; }
        if (el && !el.classList.contains("status-streaming")) return;
        draw(m.id, m.message_html);
        lastSeq[m.id] = Infinity;
      });
      var gen = data.generation;
      if (gen) {
        var el = streamingMessage(gen.message_id);
        markStreaming(el, true);
        drawProgress(el, gen);
        showReasoning(el, gen.reasoning || "", true);
        lastSeq[gen.message_id] = gen.seq;
        setRunning(gen.message_id);
      } else {
        setRunning(null);
      }
      if (anchored) anchored = false; else scrollDown();
    },
    "message.created": function (data) {
      var m = data.message;
      // A regenerated reply or an edited message replaces its earlier siblings and what followed them
      // on screen (they stay in the history, one click of ‹ › away).
      cutSiblings(m);
      if (!(lastSeq[m.id] > 0)) draw(m.id, m.message_html);  // text already streamed into it stays
      scrollDown();
    },
    // Some tab picked another sibling: the page shows that branch from the sibling down.
    "chat.branch": function (data) {
      var tail = data.messages_tail || [];
      if (!tail.length) return;
      var shown = (tail[0].siblings || [tail[0].id]).map(findMsg).filter(Boolean)[0];
      if (!shown) { location.reload(); return; }  // drawn outside the stretch this page holds
      cutFrom(shown);
      tail.forEach(function (m) {
        draw(m.id, m.message_html);
        if (m.status !== "streaming") lastSeq[m.id] = Infinity;
      });
      var first = findMsg(tail[0].id);
      if (first && first.scrollIntoView) first.scrollIntoView({ block: "nearest" });
    },
    "generation.started": function (data) {
      markStreaming(streamingMessage(data.message_id), true);
      lastSeq[data.message_id] = lastSeq[data.message_id] || 0;
      setRunning(data.message_id);
      scrollDown();
    },
    "chat.updated": function (data) { if (data.chat) showTitle(data.chat); },
    "generation.delta": function (data) { delta(data, false); },
    "generation.reasoning": function (data) { delta(data, true); },
    "generation.finished": function (data) { ended(data); },
    "generation.error": function (data) {
      if (data.message_id && data.message_html) ended(data);
      else {
        notice(data.code + ": " + data.message);
        if (!data.message_id || running === data.message_id) setRunning(null);
      }
    },
    "tool.call": function (data) {
      showToolCall(streamingMessage(data.message_id), data);
      scrollDown();
    },
    "tool.result": function (data) {
      showToolCall(streamingMessage(data.message_id), data);
      scrollDown();
    },
    "image.started": function () {
      var p = $("image-pending") || document.createElement("p");
      p.id = "image-pending";
      p.className = "muted";
      p.setAttribute("role", "status");
      text(p, "Generating image…");
      messages.appendChild(p);
      scrollDown();
    },
    "image.finished": function (data) {
      var pending = $("image-pending");
      if (pending) pending.remove();
      (data.images || []).forEach(function (img) {
        if ($("img-" + img.id)) return;
        var fig = document.createElement("figure");
        fig.className = "gen-image";
        fig.id = "img-" + img.id;
        var image = document.createElement("img");
        image.src = img.url;
        var caption = img.revised_prompt || lastImagePrompt || "Generated image";
        image.alt = caption;
        var cap = document.createElement("figcaption");
        appendText(cap, caption + " · ");
        var a = document.createElement("a");
        a.href = img.url;
        a.setAttribute("download", "");
        a.textContent = "Download";
        cap.appendChild(a);
        fig.appendChild(image);
        fig.appendChild(cap);
        messages.appendChild(fig);
      });
      scrollDown();
    },
    "image.error": function (data) {
      var pending = $("image-pending");
      if (pending) pending.remove();
      notice("Image generation failed — " + data.code + ": " + data.message);
    },
    "error": function (data) { notice(data.code + ": " + data.message); },
    "pong": function () {}
  };

  // The chat's title in the heading, the window's title and its entry in the list (added for a chat
  // this page has just made).
  function showTitle(chat) {
    var title = chat.title || "Untitled chat";
    text($("chat-title"), title);
    document.title = title + " · qtap";
    var list = $("chat-list"), item = $("chat-item-" + chat.id);
    if (!item && list) {
      item = document.createElement("li");
      item.className = "chat-item current";
      item.id = "chat-item-" + chat.id;
      var a = document.createElement("a");
      a.href = "/chats/" + Number(chat.id) + "/";
      a.setAttribute("aria-current", "page");
      item.appendChild(a);
      var empty = list.querySelector("li.muted");
      if (empty) empty.remove();
      list.insertBefore(item, list.firstChild);
    }
    var link = item && item.querySelector("a");
    if (link) text(link, title);
    var input = item && item.querySelector("input[name=title]");
    if (input) input.value = chat.title || "";
  }

  // The end of a reply: the server's drawing of it as it ended replaces the streamed text.
  function ended(data) {
    draw(data.message_id, data.message_html);
    lastSeq[data.message_id] = Infinity;  // late duplicates of a finished stream are dropped
    if (running === data.message_id) setRunning(null);
    scrollDown();
  }

  function delta(data, reasoning) {
    var id = data.message_id;
    var seen = lastSeq[id];
    if (seen != null && data.seq <= seen) return;   // already applied (arrived before a resume)
    lastSeq[id] = data.seq;
    var el = streamingMessage(id);
    if (reasoning) showReasoning(el, data.text, false);
    else appendMarkdown(el, data.text);
    if (running !== id) { markStreaming(el, true); setRunning(id); }
    scrollDown();
  }

  // ---- connection -------------------------------------------------------------------------

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.wsPath);
    socket.onopen = function () {
      retries = 0;
      lastFrameAt = Date.now();
      setStatus("Connected");
      clearInterval(pingTimer);
      pingTimer = setInterval(function () { send({ type: "ping" }); }, 25000);
    };
    socket.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type !== "pong") lastFrameAt = Date.now();  // the keep-alive says nothing of the reply
      var handler = handlers[data.type];
      if (handler) handler(data);
    };
    socket.onclose = function (event) {
      clearInterval(pingTimer);
      if (event.code === 4403 || event.code === 4404) {
        closedForGood = true;
        setStatus(event.code === 4404 ? "This chat no longer exists." : "Not allowed — sign in again.");
        return;
      }
      if (closedForGood) return;
      var delay = Math.min(10000, 500 * Math.pow(2, retries)) * (0.75 + Math.random() / 2);
      retries += 1;
      setStatus("Disconnected — reconnecting in " + Math.round(delay / 1000) + " s…");
      setTimeout(connect, delay);
    };
  }

  // A reply written by another server process reaches this tab through the channel layer; if that
  // process dies, nothing more arrives, not even an error. After a silence longer than the server
  // takes to call a reply stale, reconnect: the fresh chat.state shows it "interrupted" (or, if it
  // is alive after all, resumes it where it was).
  setInterval(function () {
    if (running !== null && socket && socket.readyState === WebSocket.OPEN && Date.now() - lastFrameAt > silenceLimit) {
      setStatus("No news of the reply — reconnecting…");
      lastFrameAt = Date.now();
      socket.close();
    }
  }, 1000);

  // ---- sending ----------------------------------------------------------------------------

  function upload(file) {
    var body = new FormData();
    body.append("file", file);
    if (profileSelect.value) body.append("profile_id", profileSelect.value);  // the server checks it takes the file
    return fetch(root.dataset.uploadUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() }
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) {
        if (r.status !== 201) throw new Error(file.name + ": " + ((json.error && json.error.message) || ("upload failed (" + r.status + ")")));
        return json;
      });
    });
  }

  // A new chat is saved with its first message: made over HTTP, then its socket opens and the message goes.
  var creating = false;
  function createChat() {
    creating = true;
    sendBtn.disabled = true;
    var body = new FormData();
    if (profileSelect.value) body.append("profile_id", profileSelect.value);
    return fetch(root.dataset.newUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" }
    }).then(function (r) {
      if (r.status !== 201) throw new Error("The chat could not be created (" + r.status + ").");
      return r.json();
    }).then(function (chat) {
      root.dataset.chatId = chat.id;
      root.dataset.wsPath = chat.ws_path;
      root.dataset.uploadUrl = chat.upload_url;
      delete root.dataset.newUrl;
      history.replaceState(null, "", chat.url);
      connect();
      return new Promise(function (resolve) {
        socket.addEventListener("open", function () { resolve(); }, { once: true });
      });
    }).then(function () { creating = false; refreshSend(); submit(); }, function (err) {
      creating = false;
      refreshSend();
      text(warning, err.message);
    });
  }

  function submit() {
    var content = prompt.value;
    if (!content.trim() && !attached.files().length) return;
    if (running !== null || creating || attached.problem()) return;
    if (root.dataset.newUrl) { createChat(); return; }
    if (!socket || socket.readyState !== WebSocket.OPEN) { setStatus("Not connected — reconnecting…"); return; }
    sendBtn.disabled = true;
    var files = attached.files();
    Promise.all(files.map(upload)).then(function (uploaded) {
      var frame = {
        type: "message.send", content: content,
        attachments: uploaded.map(function (u) { return u.id; }),
        client_msg_id: "c" + Date.now() + "-" + (++msgCounter)
      };
      if (profileSelect.value) frame.profile_id = Number(profileSelect.value);
      if (send(frame)) {
        prompt.value = "";
        attached.clear();
      }
      refreshSend();
    }).catch(function (err) {
      text(warning, err.message);
      refreshSend();
    });
  }

  function stop() {
    if (running === null) return;
    send({ type: "generation.stop", message_id: running });
  }

  composer.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
  // Enter sends, except on a touch keyboard, where it makes a new line and the Send button sends.
  prompt.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !touch) { e.preventDefault(); submit(); }
  });
  if (touch && $("composer-help")) text($("composer-help"), "Enter makes a new line · the Send button sends");
  // Narrow screens: the chat list is a drawer behind "Chats" (closed by its "Close", Esc or a pick).
  var chatsToggle = $("chats-toggle"), sidebar = $("chat-sidebar");
  function showChats(open) {
    document.body.classList.toggle("chats-open", open);
    if (chatsToggle) chatsToggle.setAttribute("aria-expanded", String(open));
    if (open && sidebar) { var first = sidebar.querySelector("a, button"); if (first) first.focus(); }
    else if (!open && chatsToggle && sidebar && sidebar.contains(document.activeElement)) chatsToggle.focus();
  }
  if (chatsToggle) chatsToggle.addEventListener("click", function () { showChats(!document.body.classList.contains("chats-open")); });
  if (sidebar) sidebar.addEventListener("click", function (e) { if (e.target.closest("[data-chats-close]")) showChats(false); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && document.body.classList.contains("chats-open")) { e.preventDefault(); showChats(false); return; }
    if (e.key === "Escape" && running !== null) { e.preventDefault(); stop(); }
  });
  stopBtn.addEventListener("click", stop);
  composer.addEventListener("qtap:attachments", refreshSend);
  function copyText(value, button) {
    var done = function () {
      var was = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = was; }, 1500);
    };
    var fallback = function () {
      var area = document.createElement("textarea");
      area.value = value;
      area.setAttribute("readonly", "");
      area.style.position = "fixed"; area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* nothing more to try */ }
      area.remove();
    };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(value).then(done, fallback);
    else fallback();
  }

  messages.addEventListener("click", function (e) {
    var c = e.target.closest("[data-action=copy-code], [data-action=copy-message]");
    if (c) {
      var from = c.dataset.action === "copy-code" ? c.closest(".code-block").querySelector("pre") : c.closest(".msg").querySelector(".body");
      copyText(from ? from.innerText.replace(/\n$/, "") : "", c);
      return;
    }
    var t = e.target.closest("[data-action=tool-approve], [data-action=tool-deny]");
    if (t) {
      // Only an answer that left for the server hides the buttons: one clicked while the socket is down
      // is not sent, and the call still waits for it.
      if (send({ type: "tool.approve", call_id: t.dataset.callId, approve: t.dataset.action === "tool-approve" })) {
        t.closest(".tool-approval").hidden = true;
      }
      return;
    }
    var nav = e.target.closest("[data-action=branch-prev], [data-action=branch-next]");
    if (nav) { pickSibling(nav); return; }
    var ed = e.target.closest("[data-action=edit]");
    if (ed) { openEditor(ed.closest(".msg")); return; }
    var b = e.target.closest("[data-action=regenerate]");
    if (!b || running !== null) return;
    send({ type: "message.regenerate", message_id: Number(b.dataset.messageId) });
  });

  // ‹ ›: the sibling before or after this message becomes the visible branch, in every tab (chat.branch).
  function pickSibling(button) {
    var ids = button.closest(".branch-nav").dataset.siblings.split(",").map(Number);
    var at = ids.indexOf(Number(button.closest(".msg").dataset.id));
    var to = ids[at + (button.dataset.action === "branch-prev" ? -1 : 1)];
    if (at >= 0 && to) send({ type: "branch.select", message_id: to });
  }

  // Edit: the message's text in place, "Save & send" sends it as a sibling (message.edit) that gets
  // its own reply; the message drawn for it replaces this one (message.created).
  function openEditor(el) {
    if (!el || el.querySelector(".msg-edit")) return;
    var body = el.querySelector(".body");
    var form = document.createElement("form");
    form.className = "msg-edit";
    var area = document.createElement("textarea");
    area.rows = Math.min(12, Math.max(2, body.textContent.split("\n").length));
    area.value = body.textContent;
    area.setAttribute("aria-label", "Edit your message");
    var save = document.createElement("button");
    save.type = "submit"; save.className = "primary"; save.textContent = "Save & send";
    var cancel = document.createElement("button");
    cancel.type = "button"; cancel.textContent = "Cancel";
    form.appendChild(area); form.appendChild(save); form.appendChild(cancel);
    body.hidden = true;
    body.after(form);
    var close = function () { form.remove(); body.hidden = false; };
    cancel.addEventListener("click", close);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!area.value.trim()) { area.focus(); return; }
      if (running !== null) { notice("A reply is being written; stop it or wait before editing."); return; }
      if (send({ type: "message.edit", message_id: Number(el.dataset.id), content: area.value })) close();
    });
    area.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !touch) { e.preventDefault(); form.requestSubmit(); }
      else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); close(); }
    });
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }
  if (imageForm) {
    imageForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var f = imageForm.elements;
      var frame = { type: "image.generate", prompt: f.prompt.value };
      if (f.image_profile_id.value) frame.image_profile_id = Number(f.image_profile_id.value);
      if (f.size.value) frame.size = f.size.value;
      if (f.aspect_ratio.value) frame.aspect_ratio = f.aspect_ratio.value;
      if (frame.prompt.trim() && send(frame)) { lastImagePrompt = frame.prompt; f.prompt.value = ""; }
    });
  }

  addCopyButtons(messages);
  document.body.addEventListener("htmx:afterSwap", function () { addCopyButtons(messages); });  // earlier pages
  if (root.dataset.wsPath) connect();
  if (!anchored) scrollDown();
})();
