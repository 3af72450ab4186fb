// The SEQR emulator's console: live regions and buyer actions without reloading.
// Everything works without this script too (forms post and redirect back); it only adds:
//  - [data-live] regions polled with ?fragment=1 every half second (204 while unchanged),
//    their children (keyed by id) replaced only when they changed, so focus stays put;
//  - form[data-buyer] posted with fetch, the answer announced in the #notice live region.
(function () {
  "use strict";

  var INTERVAL_MS = 500;
  var source = new WeakMap(); // element -> the HTML the server sent for it

  function toLogin() {
    window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
  }

  function say(message, isError) {
    var notice = document.getElementById("notice");
    if (!notice) return;
    notice.hidden = false;
    notice.textContent = message;
    notice.classList.toggle("error", Boolean(isError));
  }

  function focusAfterReplace(node, formAction) {
    var target = null;
    if (formAction) {
      var form = node.querySelector('form[action="' + formAction + '"]');
      var button = form && form.querySelector("button");
      if (button && !button.disabled) target = button;
    }
    if (!target) target = node.querySelector(".actions button:not([disabled])");
    if (!target) {
      node.setAttribute("tabindex", "-1");
      target = node;
    }
    target.focus({ preventScroll: true });
  }

  function morph(container, html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var incoming = Array.prototype.slice.call(template.content.children);
    var existing = new Map();
    Array.prototype.forEach.call(container.children, function (child) {
      if (child.id) existing.set(child.id, child);
    });
    var active = document.activeElement;
    var keep = new Set();
    var previous = null;
    incoming.forEach(function (node) {
      var html = node.outerHTML;
      var current = node.id ? existing.get(node.id) : null;
      if (current && source.get(current) === html) {
        node = current; // unchanged: keep the element, and the focus in it
      } else {
        source.set(node, html);
        if (current) {
          var hadFocus = current.contains(active);
          var form = hadFocus && active.closest ? active.closest("form") : null;
          current.replaceWith(node);
          if (hadFocus) focusAfterReplace(node, form && form.getAttribute("action"));
        }
        if (node.classList) node.classList.add("changed");
      }
      var slot = previous ? previous.nextElementSibling : container.firstElementChild;
      if (slot !== node) container.insertBefore(node, slot);
      keep.add(node);
      previous = node;
    });
    Array.prototype.slice.call(container.children).forEach(function (child) {
      if (!keep.has(child)) child.remove();
    });
  }

  function Region(element) {
    this.element = element;
    this.stamp = null;
    this.busy = false;
    Array.prototype.forEach.call(element.children, function (child) {
      source.set(child, child.outerHTML);
    });
  }

  Region.prototype.refresh = function () {
    var region = this;
    if (region.busy) return Promise.resolve();
    region.busy = true;
    var url = new URL(region.element.getAttribute("data-live"), window.location.origin);
    url.searchParams.set("fragment", "1");
    if (region.stamp) url.searchParams.set("stamp", region.stamp);
    return fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.status === 401) return toLogin();
        region.stamp = response.headers.get("X-Stamp") || region.stamp;
        if (response.status === 200) {
          return response.text().then(function (html) { morph(region.element, html); });
        }
      })
      .catch(function () { /* the gateway is away: the next tick tries again */ })
      .then(function () { region.busy = false; });
  };

  var regions = [];

  function refreshAll() {
    return Promise.all(regions.map(function (region) { return region.refresh(); }));
  }

  function onSubmit(event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-buyer]")) return;
    event.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    form.setAttribute("aria-busy", "true");
    fetch(form.getAttribute("action"), {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form)).toString()
    })
      .then(function (response) {
        if (response.status === 401) return toLogin();
        return response.json().catch(function () { return {}; }).then(function (answer) {
          say(answer.message || answer.error || "HTTP " + response.status, !response.ok);
        });
      })
      .catch(function () { say("The gateway did not answer; try again.", true); })
      .then(function () {
        form.removeAttribute("aria-busy");
        return refreshAll();
      });
  }

  function start() {
    regions = Array.prototype.map.call(document.querySelectorAll("[data-live]"), function (el) {
      return new Region(el);
    });
    document.addEventListener("submit", onSubmit);
    if (regions.length) {
      window.setInterval(function () {
        if (!document.hidden) refreshAll();
      }, INTERVAL_MS);
      refreshAll();
    }
    // the message of a form posted without this script came in ?notice=: shown once
    var url = new URL(window.location.href);
    if (url.searchParams.has("notice")) {
      url.searchParams.delete("notice");
      window.history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
