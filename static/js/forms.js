// Forms that forgive, as a progressive layer over pages that work without it:
// - a refused form's error summary takes focus as the page loads, so a screen reader
//   reads it and a keyboard user starts there; its links move focus to their field;
// - fields meant for one kind of lesson (data-shown-for-kind) hide for the others
//   (unless they hold an error to read);
// - a form marked data-warn-unsaved asks before the page is left with changes unsaved;
//   data-warn-unsaved="unsaved" marks one the server sent back without storing it (refused,
//   refreshed, in conflict): leaving it asks even before a further change.
(function () {
  "use strict";

  function focusable(element) {
    if (element.matches("input, select, textarea, button, a[href], [tabindex]")) {
      return element;
    }
    return element.querySelector("input:not([type=hidden]):not([disabled]), select, textarea");
  }

  var summary = document.querySelector("[data-focus-on-load]");
  if (summary) {
    summary.focus();
    summary.querySelectorAll("a[href^='#']").forEach(function (link) {
      link.addEventListener("click", function (event) {
        var target = document.getElementById(link.getAttribute("href").slice(1));
        var field = target && focusable(target);
        if (!field) {
          return;  // the browser follows the link
        }
        event.preventDefault();
        var group = target.closest("[data-shown-for-kind]");
        if (group) {
          group.hidden = false;
        }
        field.focus();
        field.scrollIntoView({block: "center"});
      });
    });
  }

  document.querySelectorAll("[data-shown-for-kind]").forEach(function (group) {
    var form = group.closest("form");
    var kind = form && form.querySelector("select[name='kind']");
    if (!kind) {
      return;
    }
    function show() {
      var wanted = group.getAttribute("data-shown-for-kind");
      group.hidden = kind.value !== wanted && !group.querySelector(".has-error");
    }
    kind.addEventListener("change", show);
    show();
  });

  document.querySelectorAll("form[data-warn-unsaved]").forEach(function (form) {
    function state() {
      return new URLSearchParams(new FormData(form)).toString();
    }
    var saved = form.getAttribute("data-warn-unsaved") === "unsaved" ? null : state();
    var submitting = false;
    form.addEventListener("submit", function () {
      submitting = true;
    });
    window.addEventListener("beforeunload", function (event) {
      if (submitting || state() === saved) {
        return;
      }
      event.preventDefault();
      event.returnValue = "";  // older browsers ask only when a value is set
    });
  });
}());
