// The index's only script (clipbook.report.dashboard inlines it): the profile switch, and sorting and filtering
// of the claims tables. Plain DOM, no framework; without it the page still shows its own profile in full.
(function () {
  "use strict";

  function showView(name) {
    document.querySelectorAll("section.view").forEach(function (section) {
      section.hidden = section.getAttribute("data-view-name") !== name;
    });
    document.querySelectorAll(".profile-switch button").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.value === name));
    });
  }

  // A numeric column sorts by its cells' data-value (empty values last, whichever the direction).
  function sortBy(table, header) {
    var column = Array.prototype.indexOf.call(header.parentNode.children, header);
    var numeric = header.getAttribute("data-sort") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    function key(row) {
      var cell = row.cells[column];
      if (!numeric) { return cell.textContent.trim().toLowerCase(); }
      var value = cell.getAttribute("data-value");
      return value === null || value === "" ? null : parseFloat(value);
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null || y === null) { return (x === null) - (y === null); }
      var order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    header.parentNode.querySelectorAll("th").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  // Every word typed must appear in the row; each select must match its data-* attribute.
  function filter(tableId) {
    var table = document.getElementById(tableId);
    var controls = document.querySelectorAll("[data-filter-for='" + tableId + "']");
    var words = [], wanted = {};
    controls.forEach(function (control) {
      if (control.tagName === "INPUT") {
        words = control.value.toLowerCase().split(/\s+/).filter(Boolean);
      } else if (control.value) {
        wanted[control.getAttribute("data-column")] = control.value;
      }
    });
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var text = row.textContent.toLowerCase();
      var visible = words.every(function (word) { return text.indexOf(word) !== -1; }) &&
        Object.keys(wanted).every(function (column) { return row.getAttribute("data-" + column) === wanted[column]; });
      row.hidden = !visible;
      shown += visible ? 1 : 0;
    });
    var count = document.querySelector("[data-count-for='" + tableId + "']");
    if (count) { count.textContent = shown + " of " + table.tBodies[0].rows.length + " claims"; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".profile-switch button").forEach(function (button) {
      button.addEventListener("click", function () { showView(button.value); });
    });
    document.querySelectorAll("table.claims-table").forEach(function (table) {
      table.querySelectorAll("th[data-sort]").forEach(function (header) {
        header.tabIndex = 0;
        header.addEventListener("click", function () { sortBy(table, header); });
        header.addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, header); }
        });
      });
    });
    document.querySelectorAll("[data-filter-for]").forEach(function (control) {
      var tableId = control.getAttribute("data-filter-for");
      control.addEventListener(control.tagName === "INPUT" ? "input" : "change", function () { filter(tableId); });
    });
    // printing shows every claim's sentence
    window.addEventListener("beforeprint", function () {
      document.querySelectorAll("details").forEach(function (details) { details.open = true; });
    });
  });
}());
