// All devices: bulk selection at fleet size (issue 12). The page works without this file: the ticked boxes are
// then sent as they are (a page holds at most 500) and "Select all ... matching this filter" is a plain checkbox.
(function () {
  "use strict";
  if (window.__devicesBulk) { return; }  // a boosted navigation may run this script again
  window.__devicesBulk = true;

  function boxes(form) {
    return form.querySelectorAll('input[type=checkbox][name="pk"]');
  }

  // One field for the whole selection: Django refuses a form of more than 1,000 fields.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-bulk-form]")) { return; }
    var matching = form.querySelector("input[data-select-matching]");
    var ticked = [];
    boxes(form).forEach(function (box) { if (box.checked) { ticked.push(box.value); } });
    form.querySelector("input[data-bulk-ids]").value = matching && matching.checked ? "" : ticked.join(",");
    // Disabled boxes are left out of the form data, which is built right after this handler; enable them again.
    boxes(form).forEach(function (box) { box.disabled = true; });
    setTimeout(function () { boxes(form).forEach(function (box) { box.disabled = false; }); }, 0);
  });

  // "Select all matching" ticks every box on the page; unticking any box unticks it.
  document.addEventListener("change", function (event) {
    var el = event.target;
    var form = el.form;
    if (!form || !form.matches("form[data-bulk-form]")) { return; }
    var matching = form.querySelector("input[data-select-matching]");
    if (matching && el === matching) {
      form.querySelectorAll('input[type=checkbox][name="pk"], input[data-select-all]').forEach(function (box) {
        box.checked = el.checked;
      });
    } else if (matching && !el.checked) {
      matching.checked = false;
    }
  });
})();
