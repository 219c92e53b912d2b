// Accord web app: sortable tables and CSV export for every table.data.sortable (no framework, no network).
(function () {
  "use strict";
  function cellValue(td) {
    return td.dataset.value !== undefined ? td.dataset.value : td.textContent.trim();
  }
  function sortTable(table, index, kind) {
    const body = table.tBodies[0];
    const th = table.tHead.rows[0].cells[index];
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    for (const cell of table.tHead.rows[0].cells) cell.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = cellValue(a.cells[index]);
      const y = cellValue(b.cells[index]);
      let c;
      if (kind === "number" || kind === "money") c = (parseFloat(x) || 0) - (parseFloat(y) || 0);
      else c = x.localeCompare(y);
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function toCsv(table) {
    const lines = [];
    for (const row of table.rows) {
      const cells = Array.from(row.cells).map(function (td) {
        const text = row.parentElement.tagName === "THEAD" ? td.textContent.trim() : cellValue(td);
        return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
      });
      lines.push(cells.join(","));
    }
    return lines.join("\n") + "\n";
  }
  document.addEventListener("click", function (event) {
    const sortButton = event.target.closest("table.sortable th button.sort");
    if (sortButton) {
      const th = sortButton.closest("th");
      sortTable(th.closest("table"), th.cellIndex, th.dataset.kind);
      return;
    }
    const csvButton = event.target.closest("button.csv");
    if (csvButton) {
      const table = document.getElementById(csvButton.dataset.table);
      const blob = new Blob([toCsv(table)], { type: "text/csv;charset=utf-8" });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = csvButton.dataset.table + ".csv";
      document.body.appendChild(link);
      link.click();
      link.remove();
    }
  });
})();
