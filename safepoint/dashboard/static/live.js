// Live updates: the server's change events (SSE, /events) name the sessions that committed; the parts of the
// page that show them re-fetch themselves (htmx, hx-trigger="sp:change from:body").
(function () {
  "use strict";
  var here = document.body.dataset.session || "";
  var dot = document.getElementById("live-dot");
  var timer = null;
  var missed = false;

  function typing(region) {
    var el = document.activeElement;
    return region && el && region.contains(el) && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }

  function refresh() {
    missed = false;
    htmx.trigger(document.body, "sp:change");
  }

  // Never replace a form the person is filling in: refresh once they leave it.
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (typing(event.detail.target)) {
      event.preventDefault();
      missed = true;
    }
  });
  document.body.addEventListener("focusout", function () {
    if (missed) setTimeout(refresh, 50);
  });

  if (!window.EventSource) return;
  var source = new EventSource("/events" + (here ? "?session=" + encodeURIComponent(here) : ""));
  source.addEventListener("ready", function () {
    if (dot) dot.classList.add("on");
    // A commit between this page's render and the stream's start sent its event to nobody: look once now.
    refresh();
  });
  source.onerror = function () { if (dot) dot.classList.remove("on"); };
  source.addEventListener("change", function (event) {
    var ids = JSON.parse(event.data);
    if (here && ids.indexOf(here) < 0) return;  // a session's page follows that session only
    clearTimeout(timer);
    timer = setTimeout(refresh, 50);
  });
  window.addEventListener("beforeunload", function () { source.close(); });
})();
