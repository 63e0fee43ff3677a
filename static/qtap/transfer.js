// The import form with progress: the file is uploaded with XMLHttpRequest (whose upload events count the
// bytes sent), the server answers at once with a job, and the page polls the job (GET /import/<id>/)
// until its result: how many chats were read and saved, then what was imported or why nothing was.
// Without this script the form posts as a plain form and the page answers when the import is done.
(function () {
  "use strict";
  var POLL_MS = 400;
  var STAGES = {
    queued: "Waiting to start…",
    reading: "Reading the file…",
    parsing: "Reading conversations",
    saving: "Saving chats",
  };

  function megabytes(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }
  function number(n) { return Number(n).toLocaleString("en"); }

  function start() {
    var form = document.querySelector("[data-import-form]");
    if (!form || !window.XMLHttpRequest || !window.FormData) return;
    var box = document.getElementById("import-progress");
    var bar = box.querySelector("progress");
    var label = box.querySelector("[data-progress-text]");
    var result = document.getElementById("import-result");
    var button = form.querySelector("button[type=submit]");

    function show(text, done, total) {
      box.hidden = false;
      label.textContent = text;
      if (total) { bar.max = total; bar.value = done; } else { bar.removeAttribute("value"); }
    }

    function finish(answer) {
      box.hidden = true;
      button.disabled = false;
      result.textContent = "";
      var line = document.createElement("p");
      if (answer.error) {
        line.className = "error";
        line.setAttribute("role", "alert");
        var strong = document.createElement("strong");
        strong.textContent = "Nothing was imported.";
        line.appendChild(strong);
        line.appendChild(document.createTextNode(" " + answer.detail + " (" + answer.error + ")"));
        result.appendChild(line);
        return;
      }
      line.className = "ok";
      line.textContent = answer.source + ": imported " + number(answer.imported) + " chat" +
        (answer.imported === 1 ? "" : "s") + " (" + number(answer.messages) + " message" +
        (answer.messages === 1 ? "" : "s") + "), skipped " + number(answer.skipped) + " already imported.";
      result.appendChild(line);
      if (answer.links && answer.links.length) {
        var list = document.createElement("ul");
        list.className = "imported";
        answer.links.forEach(function (chat) {
          var item = document.createElement("li");
          var link = document.createElement("a");
          link.href = chat.url;
          link.textContent = chat.title || "Untitled chat";
          item.appendChild(link);
          list.appendChild(item);
        });
        result.appendChild(list);
      }
    }

    function follow(url) {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (status) {
          if (status.finished) { finish(status); return; }
          var stage = STAGES[status.status] || status.status;
          if (status.total) stage += ": " + number(status.done) + " of " + number(status.total);
          show(stage, status.done, status.total);
          window.setTimeout(function () { follow(url); }, POLL_MS);
        })
        .catch(function () {
          // A dropped poll is not a failed import: ask again a little later.
          window.setTimeout(function () { follow(url); }, POLL_MS * 5);
        });
    }

    form.addEventListener("submit", function (event) {
      var file = form.querySelector("input[type=file]").files[0];
      if (!file) return;
      event.preventDefault();
      var data = new FormData(form);
      data.set("progress", "1");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        var total = e.lengthComputable ? e.total : file.size;
        show("Uploading: " + megabytes(e.loaded) + " of " + megabytes(total), e.loaded, total);
      });
      xhr.addEventListener("load", function () {
        var answer;
        try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
        if (xhr.status === 202 && answer) { show(STAGES[answer.status] || "", 0, 0); follow(answer.status_url); return; }
        finish(answer && answer.error ? answer : { error: "http_" + xhr.status, detail: "The server answered " + xhr.status + "." });
      });
      xhr.addEventListener("error", function () {
        finish({ error: "network", detail: "The upload did not reach the server; check the connection and try again." });
      });
      result.textContent = "";
      button.disabled = true;
      show("Uploading: 0.0 MB of " + megabytes(file.size), 0, file.size);
      xhr.send(data);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
