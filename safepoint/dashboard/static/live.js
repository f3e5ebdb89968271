// Live updates: the server's change events (SSE, /events) name the sessions that committed; the parts of the
// page that show them re-fetch themselves (htmx, hx-trigger="sp:change from:body").
(function () {
  "use strict";
  var here = document.body.dataset.session || "";
  var dot = document.getElementById("live-dot");
  var timer = null;
  var missed = false;

  function edited(field) {
    if (field.type === "hidden" || field.type === "submit") return false;
    if (field.tagName === "SELECT") {
      if (field.multiple) {
        for (var i = 0; i < field.options.length; i++) {
          if (field.options[i].selected !== field.options[i].defaultSelected) return true;
        }
        return false;
      }
      // A single select with no option marked selected shows its first one.
      var shown = 0;
      for (var j = 0; j < field.options.length; j++) {
        if (field.options[j].defaultSelected) { shown = j; break; }
      }
      return field.selectedIndex !== shown;
    }
    if (field.type === "checkbox" || field.type === "radio") return field.checked !== field.defaultChecked;
    return field.value !== field.defaultValue;
  }

  // A region is being edited while a field in it has the focus or holds what the person changed and has not sent.
  function typing(region) {
    if (!region) return false;
    var el = document.activeElement;
    if (el && region.contains(el) && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName)) return true;
    var fields = region.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      if (edited(fields[i])) return true;
    }
    return false;
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
  // A refresh sent before the person started typing must not land on top of what they typed since.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    if (typing(event.detail.target)) {
      event.detail.shouldSwap = false;
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
