// hipdx's only script of its own (the pages work without it; CSP: script-src 'self').
// A request of htmx answered 4xx/5xx (other than a 422, which is the form's own error summary) puts
// its message in #request-error (base.html's htmx-config); the part of the page that request would
// have refreshed is marked out of date, so that a differential the server could not recompute is
// never shown as current. A later success clears both.
document.addEventListener("htmx:afterRequest", function (event) {
  var box = document.getElementById("request-error");
  var name = event.detail.elt && event.detail.elt.getAttribute("hx-target");
  var part = name && name.charAt(0) === "#" ? document.getElementById(name.slice(1)) : null;
  if (event.detail.successful) {
    if (box) { box.innerHTML = ""; }
    if (part) { part.classList.remove("stale"); }
  } else if (part && event.detail.xhr && event.detail.xhr.status >= 400 && event.detail.xhr.status !== 422) {
    part.classList.add("stale");
  }
});
