// Sorting, filtering and provenance rows of the spikebench leaderboard. Each table row and its
// provenance row share one <tbody>, so sorting moves <tbody> elements and the pair stays together.
(function () {
  "use strict";

  function sortKey(group, index) {
    return group.rows[0].cells[index].getAttribute("data-sort");
  }

  function compare(a, b, numeric) {
    if (a === b) { return 0; }
    if (a === "") { return 1; }
    if (b === "") { return -1; }
    if (numeric) { return parseFloat(a) - parseFloat(b); }
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }

  function sortTable(table, header) {
    var index = header.cellIndex;
    var numeric = header.getAttribute("data-type") === "num";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(header.parentNode.cells, function (cell) {
      if (cell.hasAttribute("aria-sort")) { cell.setAttribute("aria-sort", "none"); }
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var groups = Array.prototype.slice.call(table.tBodies);
    groups.sort(function (a, b) {
      var ka = sortKey(a, index), kb = sortKey(b, index);
      if (ka === "" || kb === "") { return compare(ka, kb, numeric); }
      return ascending ? compare(ka, kb, numeric) : compare(kb, ka, numeric);
    });
    groups.forEach(function (group) { table.appendChild(group); });
  }

  function number(input) {
    var value = input.value.trim();
    return value === "" ? null : parseFloat(value);
  }

  // The source filter: a row shows when it comes from the chosen source ("" : every source).
  function fromChosenSource(form, group) {
    var source = form.elements.source.value;
    return source === "" || group.getAttribute("data-source") === source;
  }

  function applyFilters(form) {
    var table = document.getElementById(form.getAttribute("data-table"));
    var family = form.elements.family.value;
    var steps = form.elements.T.value;
    var low = number(form.elements.pmin);
    var high = number(form.elements.pmax);
    var shown = 0;
    var groups = table.tBodies;
    for (var i = 0; i < groups.length; i++) {
      var group = groups[i];
      var params = group.getAttribute("data-params");
      var size = params === "" ? null : parseFloat(params);
      var visible = fromChosenSource(form, group) &&
        (family === "" || group.getAttribute("data-family") === family) &&
        (steps === "" || group.getAttribute("data-t") === steps) &&
        (low === null || (size !== null && size >= low)) &&
        (high === null || (size !== null && size <= high));
      group.hidden = !visible;
      if (visible) { shown += 1; }
      var points = table.closest("section").querySelectorAll('.pt.measured[data-row="' + group.id + '"]');
      for (var j = 0; j < points.length; j++) {
        if (visible) { points[j].removeAttribute("visibility"); } else { points[j].setAttribute("visibility", "hidden"); }
      }
    }
    form.querySelector(".count").textContent = shown + " of " + groups.length + " rows";
  }

  function toggleProvenance(button) {
    var row = document.getElementById(button.getAttribute("aria-controls"));
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    row.hidden = !open;
  }

  document.querySelectorAll("table.board").forEach(function (table) {
    table.tHead.addEventListener("click", function (event) {
      var button = event.target.closest("button.sort");
      if (button) { sortTable(table, button.closest("th")); }
    });
    table.addEventListener("click", function (event) {
      var button = event.target.closest("button.toggle");
      if (button) { toggleProvenance(button); }
    });
  });

  // The column chooser: a column's header and cells are hidden or shown in every dataset table at once.
  function showColumn(key, visible) {
    document.querySelectorAll("table.board .col-" + key).forEach(function (cell) { cell.hidden = !visible; });
  }

  document.querySelectorAll("form.columns-form").forEach(function (form) {
    form.addEventListener("change", function (event) {
      var box = event.target;
      if (box.type === "checkbox") { showColumn(box.name, box.checked); }
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
  });

  document.querySelectorAll("form.filters").forEach(function (form) {
    form.addEventListener("input", function () { applyFilters(form); });
    form.addEventListener("change", function () { applyFilters(form); });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
  });
}());
