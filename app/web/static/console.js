// belegsync console: small progressive enhancements. Every page works without this file.
"use strict";

// The overview refreshes its table in place every few seconds (only while the tab is visible).
function autoRefresh() {
  document.querySelectorAll("[data-refresh]").forEach(function (box) {
    var url = box.getAttribute("data-refresh");
    var seconds = parseInt(box.getAttribute("data-refresh-seconds") || "10", 10);
    setInterval(function () {
      if (document.hidden) { return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected || !response.ok) { throw new Error("refresh " + response.status); }
          return response.text();
        })
        .then(function (html) {
          box.innerHTML = html;
          box.setAttribute("data-refreshed", new Date().toISOString());
        })
        .catch(function () { /* keep the last table; the next tick tries again */ });
    }, seconds * 1000);
  });
}

// "Select all" of one group of checkboxes (the failed/parked page).
function selectAll() {
  document.querySelectorAll("[data-select-all]").forEach(function (button) {
    var group = button.getAttribute("data-select-all");
    button.hidden = false;
    button.addEventListener("click", function () {
      var boxes = document.querySelectorAll('input[type=checkbox][data-group="' + group + '"]');
      var all = Array.prototype.every.call(boxes, function (b) { return b.checked; });
      boxes.forEach(function (b) { b.checked = !all; });
    });
  });
}

// The add-account wizard: one step at a time with Next/Back, as in GMI's own dialog.
function wizard() {
  document.querySelectorAll("form[data-wizard]").forEach(function (form) {
    var steps = Array.prototype.slice.call(form.querySelectorAll("[data-step]"));
    if (steps.length < 2) { return; }
    form.classList.add("js-steps");
    var submit = form.querySelector("[data-submit]");
    var leave = form.querySelector("[data-back-link]");
    var current = 0;
    // After a refused save, open the first step that holds an error.
    steps.forEach(function (step, index) {
      if (current === 0 && step.querySelector(".has-error")) { current = index; }
    });
    var nav = document.createElement("div");
    nav.className = "wizard-nav";
    var back = document.createElement("button");
    back.type = "button";
    back.textContent = form.getAttribute("data-back") || "←";
    var next = document.createElement("button");
    next.type = "button";
    next.className = "primary";
    next.setAttribute("data-next", "");
    next.textContent = form.getAttribute("data-next") || "→";
    nav.appendChild(back);
    nav.appendChild(next);
    submit.parentNode.insertBefore(nav, submit);

    function show(index) {
      current = index;
      steps.forEach(function (step, i) { step.hidden = i !== index; });
      back.hidden = index === 0;
      if (leave) { leave.hidden = index !== 0; }
      next.hidden = index === steps.length - 1;
      submit.hidden = index !== steps.length - 1;
    }
    next.addEventListener("click", function () {
      // The browser's own checks (required fields) for this step before moving on.
      var fields = steps[current].querySelectorAll("input, select, textarea");
      for (var i = 0; i < fields.length; i++) {
        if (!fields[i].checkValidity()) { fields[i].reportValidity(); return; }
      }
      show(current + 1);
    });
    back.addEventListener("click", function () { show(current - 1); });
    show(current);
  });
}

document.addEventListener("DOMContentLoaded", function () {
  autoRefresh();
  selectAll();
  wizard();
});
