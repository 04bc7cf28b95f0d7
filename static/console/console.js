// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // "Select all" checkboxes in tables: <input type="checkbox" data-select-all="name">
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.matches && box.matches("input[data-select-all]")) {
      var name = box.getAttribute("data-select-all");
      document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (el) {
        el.checked = box.checked;
      });
    }
  });
  // Confirm destructive actions: <form data-confirm="Delete this policy?">
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  }, true);
  // Auto-submit filter forms on change (the submit button stays for no-JS use). requestSubmit() fires a real
  // submit event: htmx takes it inside an hx-boost region, a plain form (no htmx around it) navigates. A
  // synthetic "submit" event (htmx.trigger) submits nothing on a plain form.
  document.addEventListener("change", function (event) {
    var el = event.target;
    var form = el.form;
    if (form && form.hasAttribute("data-autosubmit") && !el.matches("input[type=search],input[type=text]")) {
      if (form.requestSubmit) { form.requestSubmit(); }
      else if (window.htmx && form.closest("[hx-boost]")) { window.htmx.trigger(form, "submit"); }
      else { form.submit(); }
    }
  });
})();
