// The exercise form's "Add another objective" button, without a round trip: adds an
// empty box in the page. Without JavaScript the same button posts the form, and the
// server renders it again with one box more (nothing is saved either way).
(function () {
  "use strict";
  var button = document.querySelector("button[name='add_objective']");
  var list = document.querySelector("fieldset.objectives ol");
  if (!button || !list) {
    return;
  }
  var max = parseInt(list.getAttribute("data-max"), 10) || 30;

  function renumber(node, index) {
    // Names and ids follow WTForms' FieldList: objectives-<n>-id, objectives-<n>-text.
    ["name", "id", "for"].forEach(function (attribute) {
      node.querySelectorAll("[" + attribute + "]").forEach(function (element) {
        element.setAttribute(attribute, element.getAttribute(attribute)
          .replace(/^objectives-\d+-/, "objectives-" + index + "-"));
      });
    });
  }

  button.addEventListener("click", function (event) {
    var items = list.querySelectorAll("li");
    if (items.length >= max) {
      return;  // let the server say so
    }
    event.preventDefault();
    var item = items[items.length - 1].cloneNode(true);
    renumber(item, items.length);
    item.querySelectorAll("input, textarea").forEach(function (field) {
      field.value = "";
      field.removeAttribute("aria-invalid");
      field.removeAttribute("aria-describedby");
    });
    item.querySelectorAll(".errors").forEach(function (node) { node.remove(); });
    var label = item.querySelector("label");
    if (label) {
      label.textContent = "Objective " + (items.length + 1);
    }
    list.appendChild(item);
    if (items.length + 1 >= max) {
      button.hidden = true;
    }
    item.querySelector("textarea").focus();
  });
}());
