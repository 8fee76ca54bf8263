// agentsync-webhooks-dashboard: live refresh, written for this crate (no library, no build
// step). The page's <main id="live"> is fetched again every data-refresh seconds and swapped
// in; the "Live" button stops and restarts it (remembered in localStorage); nothing is fetched
// while the tab is hidden, and a visible tab refreshes at once.
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-refresh")) || 0;
  var toggle = document.getElementById("live-toggle");
  if (seconds <= 0 || !toggle || !window.fetch || !window.DOMParser) { return; }
  var key = "agentsync-webhooks-dashboard.live";
  var on = true;
  try { on = window.localStorage.getItem(key) !== "off"; } catch (e) { /* private mode */ }
  var timer = null;

  function show(failed) {
    toggle.textContent = on ? (failed ? "Live (retrying)" : "Live") : "Paused";
    toggle.setAttribute("aria-pressed", on ? "true" : "false");
    toggle.className = on ? "on" : "off";
  }
  function schedule() {
    window.clearTimeout(timer);
    timer = (on && !document.hidden) ? window.setTimeout(refresh, seconds * 1000) : null;
  }
  function refresh() {
    if (!on || document.hidden) { return; }
    window.fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        var current = document.getElementById("live");
        if (fresh && current && on) { current.replaceWith(fresh); }
        show(false);
      }, function () { show(true); })
      .then(schedule);
  }
  toggle.addEventListener("click", function () {
    on = !on;
    try { window.localStorage.setItem(key, on ? "on" : "off"); } catch (e) { /* ignored */ }
    show(false);
    if (on) { refresh(); } else { schedule(); }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { schedule(); } else if (on) { refresh(); }
  });
  show(false);
  schedule();
}());
