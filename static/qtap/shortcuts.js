// Keyboard shortcuts on every page, and their help (press ? when not typing in a field; Esc closes it).
//   Ctrl+Shift+O (⌘⇧O)  new chat (a combination browsers leave to the page; Ctrl+N/Ctrl+T are theirs)
//   ↑ in an empty composer  edit your last message (chat.js opens the editor on its Edit button)
//   Ctrl+K (⌘K)  search (search.js)      Esc  stop the reply being written (chat.js)
// The keys act through the page's own controls and links, so each does what clicking would.
(function () {
  "use strict";
  var script = document.currentScript;
  var newChatUrl = script && script.dataset.newChatUrl;
  var help = document.getElementById("shortcuts-help");

  function typing(target) {
    return !!(target && target.closest && target.closest("input, textarea, select, [contenteditable], [contenteditable=true]"));
  }

  function showHelp(open) {
    if (!help) return;
    if (open && !help.open) { if (help.showModal) help.showModal(); else help.setAttribute("open", ""); }
    else if (!open && help.open) { if (help.close) help.close(); else help.removeAttribute("open"); }
  }

  // Capture phase: Esc that closes the help must not also stop a reply (chat.js listens further on).
  window.addEventListener("keydown", function (e) {
    if (e.isComposing) return;
    if (help && help.open) {
      if (e.key === "Escape" || (e.key === "?" && !typing(e.target))) { e.preventDefault(); e.stopPropagation(); showHelp(false); }
      return;
    }
    var mod = e.ctrlKey || e.metaKey;
    if (mod && e.shiftKey && !e.altKey && e.key.toLowerCase() === "o" && newChatUrl) {
      e.preventDefault();
      window.location.assign(newChatUrl);
    } else if (e.key === "?" && !mod && !e.altKey && !typing(e.target)) {
      e.preventDefault();
      showHelp(true);
    } else if (e.key === "ArrowUp" && !mod && !e.altKey && !e.shiftKey && e.target && e.target.id === "prompt" && e.target.value === "") {
      var edits = document.querySelectorAll("#messages .msg-user [data-action=edit]");
      if (edits.length) { e.preventDefault(); edits[edits.length - 1].click(); }
    }
  }, true);

  if (help) {
    help.addEventListener("click", function (e) {
      if (e.target === help || e.target.closest("[data-close]")) showHelp(false);  // the backdrop, or Close
    });
  }
})();
