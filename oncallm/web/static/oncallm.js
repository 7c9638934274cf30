// OncallM's alert page: copy buttons and the live triage. No framework, no build step.
//
// Everything here is an enhancement: without JavaScript the page still shows the stored
// triage and refreshes itself (<noscript> meta refresh) until it is done.
(function () {
  "use strict";

  var announcer = null;

  function announce(text) {
    // One polite live region for the whole page, so screen readers hear "Copied".
    if (!announcer) {
      announcer = document.getElementById("announcer");
    }
    if (announcer) {
      announcer.textContent = "";
      window.setTimeout(function () { announcer.textContent = text; }, 50);
    }
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on a LAN address: the Clipboard API is not there, a selection is.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    copyText(button.getAttribute("data-copy")).then(function () {
      button.textContent = "Copied";
      announce(button.getAttribute("data-copied") || "Copied");
    }, function () {
      button.textContent = "Copy failed";
      announce("Copy failed: select the text and copy it by hand");
    }).then(function () {
      window.setTimeout(function () { button.textContent = label; }, 2000);
    });
  });

  // --- the live triage -----------------------------------------------------------------

  var POLL_MS = 2000;

  function liveTriage(box) {
    var fragmentUrl = box.getAttribute("data-fragment");
    var streamUrl = box.getAttribute("data-stream");
    var source = null;
    var timer = null;
    var fetching = false;
    var again = false;
    var explanation = "";

    function live() { return box.getAttribute("data-live") === "true"; }

    function stop() {
      if (source) { source.close(); source = null; }
      if (timer) { window.clearInterval(timer); timer = null; }
    }

    function refresh() {
      if (fetching) { again = true; return; }
      fetching = true;
      fetch(fragmentUrl, { headers: { "Accept": "text/html" }, cache: "no-store" })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector("#triage");
          if (!fresh) { return; }
          box.innerHTML = fresh.innerHTML;
          ["data-live", "data-stream"].forEach(function (name) {
            var value = fresh.getAttribute(name);
            if (value === null) { box.removeAttribute(name); } else { box.setAttribute(name, value); }
          });
          if (live() && explanation) { showExplanation(); }
          if (!live()) {
            stop();
            announce("Triage finished");
          } else if (!source && box.getAttribute("data-stream")) {
            streamUrl = box.getAttribute("data-stream");
            connect();
          }
        })
        .catch(function () { /* the next poll or event tries again */ })
        .then(function () {
          fetching = false;
          if (again) { again = false; refresh(); }
        });
    }

    function showExplanation() {
      var target = box.querySelector("#live-explanation");
      if (target) {
        target.hidden = false;
        target.querySelector(".explanation").textContent = explanation;
      }
    }

    function poll() {
      if (!timer) { timer = window.setInterval(refresh, POLL_MS); }
    }

    function connect() {
      if (!streamUrl || !window.EventSource) { poll(); return; }
      source = new EventSource(streamUrl);
      source.addEventListener("status", refresh);
      source.addEventListener("explanation", function (event) {
        explanation += JSON.parse(event.data).delta;
        showExplanation();
      });
      source.addEventListener("reset", function () { explanation = ""; showExplanation(); });
      source.addEventListener("done", function () { stop(); refresh(); });
      source.addEventListener("timeout", function () { stop(); poll(); });
      source.onerror = function () {
        // A proxy that drops SSE, a restarted server: fall back to polling.
        if (source) { source.close(); source = null; }
        poll();
      };
    }

    if (live()) { connect(); if (!streamUrl) { poll(); } }
  }

  // --- the rest of the page: resolution, new notes, a triage that finished ---------------

  var WATCH_MS = 5000;

  function changed(holder, data) {
    var triage = data.triage ? data.triage.status : "";
    return data.status !== holder.getAttribute("data-status") ||
      String((data.timeline || []).length) !== holder.getAttribute("data-timeline") ||
      triage !== holder.getAttribute("data-triage");
  }

  function watchAlert(holder) {
    var api = holder.getAttribute("data-api");
    var busy = false;

    function swap() {
      return fetch(window.location.pathname, { headers: { "Accept": "text/html" }, cache: "no-store" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("alert");
          if (!fresh) { return; }
          holder.innerHTML = fresh.innerHTML;
          ["data-status", "data-timeline", "data-triage"].forEach(function (name) {
            holder.setAttribute(name, fresh.getAttribute(name) || "");
          });
          document.title = doc.title;
          var box = document.getElementById("triage");
          if (box) { liveTriage(box); }
          announce("This alert was updated");
        });
    }

    function check() {
      var box = document.getElementById("triage");
      // A running triage updates itself; a note being written must not be wiped.
      if (busy || document.hidden || (box && box.getAttribute("data-live") === "true")) { return; }
      var draft = document.getElementById("note-text");
      busy = true;
      fetch(api, { headers: { "Accept": "application/json" }, cache: "no-store" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data || !changed(holder, data)) { return null; }
          if (draft && draft.value.trim()) {
            var notice = document.getElementById("stale-notice");
            if (notice) { notice.hidden = false; }
            return null;
          }
          return swap();
        })
        .catch(function () { /* next time */ })
        .then(function () { busy = false; });
    }

    window.setInterval(check, WATCH_MS);
  }

  function watchNotSeen(box) {
    // Not a timed reload: the page changes only once the alert has arrived.
    var api = box.getAttribute("data-api");
    function check() {
      fetch(api, { cache: "no-store" }).then(function (response) {
        if (response.ok) { window.location.reload(); }
      }).catch(function () { /* next time */ });
    }
    window.setInterval(check, WATCH_MS);
    var now = document.getElementById("check-now");
    if (now) { now.addEventListener("click", check); }
  }

  function start() {
    var box = document.getElementById("triage");
    if (box) { liveTriage(box); }
    var holder = document.getElementById("alert");
    if (holder && holder.getAttribute("data-api")) { watchAlert(holder); }
    var waiting = document.getElementById("not-seen");
    if (waiting) { watchNotSeen(waiting); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
