// linkaud console: draws the entered/exited chart with uPlot from the data
// the server put in the page. Everything else is plain HTML.
(function () {
  "use strict";
  window.linkaudCharts = [];
  var el = document.getElementById("changes-chart");
  var src = document.getElementById("changes-data");
  if (!el || !src || typeof uPlot === "undefined") return;
  var d = JSON.parse(src.textContent);
  if (!d.time || d.time.length === 0) return;
  // x is the run number: runs may start within the same second.
  var opts = {
    width: 600, height: 200,
    scales: { x: { time: false } },
    series: [
      { label: "run" },
      { label: "entered", stroke: "#127a3d", width: 1.5, points: { show: true } },
      { label: "exited", stroke: "#b42318", width: 1.5, points: { show: true } }
    ],
    axes: [{}, {}]
  };
  var chart = new uPlot(opts, [d.runs, d.entered, d.exited], el);
  window.linkaudCharts.push(chart);
})();
