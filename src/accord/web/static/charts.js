// Render every chart of the page from its Vega-Lite spec with the locally served vega-embed.
(function () {
  "use strict";
  function renderCharts(root) {
    if (typeof vegaEmbed !== "function") return;
    for (const el of root.querySelectorAll("div.vega[data-spec-id]")) {
      if (el.dataset.rendered) continue;
      const spec = JSON.parse(document.getElementById(el.dataset.specId).textContent);
      el.dataset.rendered = "1";
      vegaEmbed(el, spec, { actions: false, renderer: "svg" }).then(function () {
        el.dataset.ready = "1";
      }).catch(function (err) {
        el.textContent = "chart error: " + err;
      });
    }
  }
  document.addEventListener("DOMContentLoaded", function () { renderCharts(document); });
  document.addEventListener("htmx:afterSwap", function (e) { renderCharts(e.target); });
})();
