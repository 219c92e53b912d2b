// The template and journey editors: mark the field an error names, and jump to an error's field or line.
(function () {
  "use strict";
  function openParents(el) {
    for (let d = el.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) d.open = true;
  }
  function selectLine(textarea, line) {
    const lines = textarea.value.split("\n");
    let start = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    textarea.focus();
    textarea.setSelectionRange(start, start + (lines[line - 1] || "").length);
    textarea.scrollTop = Math.max(0, (line - 3) * (textarea.scrollHeight / Math.max(lines.length, 1)));
  }
  function markInvalid() {
    const form = document.getElementById("template-form");
    if (!form) return;
    form.querySelectorAll("[aria-invalid='true']").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    const error = document.querySelector("#template-preview #template-error");
    const field = error && error.dataset.field ? document.getElementById(error.dataset.field) : null;
    if (field) {
      field.setAttribute("aria-invalid", "true");
      openParents(field);
    }
  }
  function listVariants() {
    document.querySelectorAll("details.locale-variants").forEach(function (locale) {
      const filled = Array.from(locale.querySelectorAll("fieldset.channel-variant")).filter(function (fs) {
        return Array.from(fs.querySelectorAll("input, textarea")).some(function (f) { return f.value.trim(); });
      }).map(function (fs) { return fs.dataset.channel; });
      const list = locale.querySelector(".variant-list");
      if (list) list.textContent = filled.length ? filled.join(", ") : list.dataset.empty;
    });
  }
  function showKindFields() {
    const kind = document.getElementById("step-kind");
    if (!kind) return;
    document.querySelectorAll("#step-form [data-kinds]").forEach(function (row) {
      row.hidden = row.dataset.kinds.split(" ").indexOf(kind.value) < 0;
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.id === "step-kind") showKindFields();
  });
  document.addEventListener("DOMContentLoaded", showKindFields);
  document.addEventListener("htmx:afterSwap", function () { markInvalid(); listVariants(); });
  document.addEventListener("click", function (event) {
    const jump = event.target.closest("[data-goto-line]");
    if (jump) {
      const target = document.getElementById(jump.dataset.target);
      if (target) {
        event.preventDefault();
        selectLine(target, Number(jump.dataset.gotoLine));
      }
      return;
    }
    const link = event.target.closest("[data-goto-field]");
    const field = link ? document.getElementById(link.dataset.gotoField) : null;
    if (field) {
      event.preventDefault();
      openParents(field);
      if (field.tagName === "TEXTAREA" && link.dataset.line) selectLine(field, Number(link.dataset.line));
      else field.focus();
    }
  });
})();
