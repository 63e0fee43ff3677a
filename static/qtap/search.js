// Search on every page: Ctrl+K / ⌘K focuses the page's search box, or opens the search page when there
// is none; and a result's link (/chats/<id>/#message-<id>) scrolls to that message, which the chat page
// draws as #msg-<id>.
(function () {
  "use strict";
  var searchUrl = document.currentScript.dataset.searchUrl;

  document.addEventListener("keydown", function (event) {
    if (!(event.ctrlKey || event.metaKey) || event.altKey || event.key.toLowerCase() !== "k") return;
    event.preventDefault();
    var box = document.querySelector("[data-search-box]");
    if (box) { box.focus(); box.select(); } else { window.location.assign(searchUrl); }
  });

  function showLinkedMessage() {
    var match = /^#message-(\d+)$/.exec(window.location.hash);
    var target = match && document.getElementById("msg-" + match[1]);
    if (!target) return;
    target.scrollIntoView({ block: "center" });
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
  document.addEventListener("DOMContentLoaded", showLinkedMessage);
  window.addEventListener("hashchange", showLinkedMessage);
})();
