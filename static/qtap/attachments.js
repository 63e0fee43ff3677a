// qtap composer attachments: the files chosen, pasted or dropped before a message is sent (SPEC §6).
// Each file is a chip: an image shows a preview from a local object URL (nothing is uploaded to preview
// it), another file its name, type and size; every chip has a remove ✕. Which files the chat's profile
// takes comes from the server (#profile-info, drawn from the manifests by
// qtap_site.chat.attachments.page_rules, in the server's own words); it follows the profile picker. A
// file the profile refuses is never uploaded: its chip says why, and Send stays disabled with that
// reason (aria-describedby) until the file is removed or the picker names a profile that takes it.
// The server refuses the same files itself; this only saves a round trip and a failed reply.
// chat.js sends: it asks window.qtapAttachments for the files and the problem, and hears
// "qtap:attachments" on the composer when either changes.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var composer = $("composer"), list = $("pending-files"), input = $("attach"), picker = $("profile");
  var blockedNote = $("send-blocked"), prompt = $("prompt");
  if (!composer || !list) return;
  var rules = JSON.parse(($("profile-info") || {}).textContent || "{}");
  var pending = [];  // {file, url (an object URL for an image's preview), reason}

  function sizeWords(bytes) {
    var units = [["GB", 1 << 30], ["MB", 1 << 20], ["KB", 1 << 10]];
    for (var i = 0; i < units.length; i++) {
      if (bytes >= units[i][1]) {
        var v = bytes / units[i][1];
        return (v >= 10 || v === Math.round(v) ? Math.round(v) : v.toFixed(1)) + " " + units[i][0];
      }
    }
    return bytes + " bytes";
  }

  // Why the picked profile refuses this file ("" when it takes it, or when the page cannot tell: a type
  // the browser does not name is left to the server, which sniffs the bytes).
  function reasonFor(file) {
    var profile = rules[picker ? picker.value : ""];
    if (!profile || !file.type) return "";
    var rule = profile.types && profile.types[file.type];
    if (!rule) return profile.other || "";
    if (rule.refused) return rule.refused;
    if (profile.max_bytes && file.size > profile.max_bytes) return rule.too_large;
    return "";
  }

  function problem() {
    var reasons = [];
    pending.forEach(function (p) { if (p.reason) reasons.push(p.file.name + ": " + p.reason); });
    return reasons.join(" ");
  }

  function chip(p, index) {
    var li = document.createElement("li");
    li.className = "chip" + (p.reason ? " chip-refused" : "");
    if (p.url) {
      var img = document.createElement("img");
      img.className = "chip-thumb";
      img.src = p.url;
      img.alt = "Preview of " + p.file.name;
      li.appendChild(img);
    }
    var name = document.createElement("span");
    name.className = "chip-name";
    name.textContent = p.file.name;
    li.appendChild(name);
    var about = document.createElement("small");
    about.className = "chip-about";
    about.textContent = (p.file.type || "unknown type") + " · " + sizeWords(p.file.size);
    li.appendChild(about);
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link chip-remove";
    remove.textContent = "✕";
    remove.setAttribute("aria-label", "Remove " + p.file.name);
    remove.addEventListener("click", function () { drop(index); });
    li.appendChild(remove);
    if (p.reason) {
      var why = document.createElement("span");
      why.className = "chip-reason error";
      why.textContent = p.reason;
      li.appendChild(why);
    }
    return li;
  }

  function render() {
    pending.forEach(function (p) { p.reason = reasonFor(p.file); });
    list.textContent = "";
    pending.forEach(function (p, i) { list.appendChild(chip(p, i)); });
    var why = problem();
    if (blockedNote) blockedNote.textContent = why ? "Cannot send: " + why : "";
    composer.dispatchEvent(new CustomEvent("qtap:attachments", { detail: { problem: why } }));
  }

  function add(files) {
    Array.prototype.forEach.call(files || [], function (file) {
      var image = /^image\//.test(file.type) && window.URL && URL.createObjectURL;
      pending.push({ file: file, url: image ? URL.createObjectURL(file) : "", reason: "" });
    });
    render();
  }

  function drop(index) {
    var gone = pending.splice(index, 1)[0];
    if (gone && gone.url) URL.revokeObjectURL(gone.url);
    render();
  }

  window.qtapAttachments = {
    files: function () { return pending.map(function (p) { return p.file; }); },
    problem: problem,
    clear: function () {
      pending.forEach(function (p) { if (p.url) URL.revokeObjectURL(p.url); });
      pending = [];
      render();
    }
  };

  if (input) input.addEventListener("change", function () { add(input.files); input.value = ""; });
  if (picker) picker.addEventListener("change", render);
  if (prompt) prompt.addEventListener("paste", function (e) {
    var files = e.clipboardData && e.clipboardData.files;
    if (files && files.length) { e.preventDefault(); add(files); }
  });
  composer.addEventListener("dragover", function (e) {
    if (e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types || [], "Files") >= 0) e.preventDefault();
  });
  composer.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files.length) { e.preventDefault(); add(e.dataTransfer.files); }
  });
})();
