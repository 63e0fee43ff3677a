// Search on every page: Ctrl+K / ⌘K focuses the page's search box, or opens the search page when there
// is none; and a result's link (/chats/<id>/#message-<id>) scrolls to that message, which the chat page
// draws as #msg-<id> (loading the earlier messages back to it when it is older than those on the page).
(function () {
  "use strict";
  var searchUrl = document.currentScript.dataset.searchUrl;

  document.addEventListener("keydown", function (event) {
    if (!(event.ctrlKey || event.metaKey) || event.altKey || event.key.toLowerCase() !== "k") return;
    event.preventDefault();
    var box = document.querySelector("[data-search-box]");
    if (box) { box.focus(); box.select(); } else { window.location.assign(searchUrl); }
  });

  var reached = {};  // message ids the page already went back for
  function showLinkedMessage() {
    var match = /^#message-(\d+)$/.exec(window.location.hash);
    var target = match && document.getElementById("msg-" + match[1]);
    var older = document.querySelector("#messages .older[hx-get]");
    if (!target && match && older && window.htmx && !reached[match[1]]) {
      // Older than the messages the page holds: the earlier ones, back to it, come in one request.
      reached[match[1]] = true;
      htmx.ajax("GET", older.getAttribute("hx-get") + "&to=" + match[1], { target: older, swap: "outerHTML" })
        .then(showLinkedMessage);
      return;
    }
    if (!target) return;
    target.scrollIntoView({ block: "center" });
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
  document.addEventListener("DOMContentLoaded", showLinkedMessage);
  window.addEventListener("hashchange", showLinkedMessage);
})();
