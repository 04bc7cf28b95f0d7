// Endpoint security pages: live filtering of settings and groups, one open info panel at a time.
// Every page works without this file (the search boxes then submit a GET and the server filters).
(function () {
  "use strict";

  function filterRows(input) {
    var scope = document.querySelector(input.getAttribute("data-live-filter"));
    if (!scope) { return; }
    var needle = input.value.trim().toLowerCase();
    var rows = scope.querySelectorAll("[data-search]");
    var visible = 0;
    rows.forEach(function (row) {
      var hit = !needle || row.getAttribute("data-search").indexOf(needle) !== -1;
      row.classList.toggle("hidden-by-filter", !hit);
      if (hit) { visible += 1; }
    });
    scope.querySelectorAll("details.cat").forEach(function (cat) {
      var any = cat.querySelector("[data-search]:not(.hidden-by-filter)");
      cat.classList.toggle("hidden-by-filter", !any);
      if (needle && any) { cat.open = true; }
    });
    var empty = scope.querySelector("[data-no-match]");
    if (empty) { empty.hidden = visible !== 0; }
  }

  document.addEventListener("input", function (event) {
    var el = event.target;
    if (el.matches && el.matches("input[data-live-filter]")) { filterRows(el); }
  });
  // With JavaScript the filter is live, so Enter must not submit the (GET) search form and lose unsaved input.
  document.addEventListener("keydown", function (event) {
    var el = event.target;
    if (event.key === "Enter" && el.matches && el.matches("input[data-live-filter]")) { event.preventDefault(); }
  });
  // One info panel open at a time; Escape closes it.
  document.addEventListener("toggle", function (event) {
    var el = event.target;
    if (el.matches && el.matches("details.info") && el.open) {
      document.querySelectorAll("details.info[open]").forEach(function (other) {
        if (other !== el) { other.open = false; }
      });
    }
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll("details.info[open]").forEach(function (d) { d.open = false; });
    }
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest || event.target.closest("details.info")) { return; }
    document.querySelectorAll("details.info[open]").forEach(function (d) { d.open = false; });
  });
  // After htmx swaps in a step, re-apply a filter that still has text in it.
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll("input[data-live-filter]").forEach(function (input) {
      if (input.value) { filterRows(input); }
    });
  });
})();
