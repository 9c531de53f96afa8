/* scratchgan report: line charts (SVG) and the spot-the-fake quiz, in plain JavaScript.
 *
 * The data comes from the JSON in <script id="report-data">: {charts: {id: chart}, quizzes: {id: answers}}.
 * A chart is {title, xLabel, yLabel, series: [{name, x: [...], y: [...]}]}; each <figure data-chart=id>
 * gets an SVG drawing of it, a legend of toggle buttons and a tooltip that follows the pointer (or the
 * arrow keys when the chart has focus). A quiz is a list of booleans, true where the tile is a fake.
 */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";  // the SVG namespace name, not a download
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  var DASHES = ["", "7 4", "2 3", "9 3 2 3"];  // after every ten series, the colours repeat dashed
  var M = {top: 12, right: 16, bottom: 44, left: 64};  // margins around the plot, in CSS pixels

  function svgEl(name, attrs, parent) {
    var e = document.createElementNS(SVG_NS, name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }

  function htmlEl(name, attrs, parent, text) {
    var e = document.createElement(name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  /** A number as text: 4 significant digits, exponent form when very large or small. */
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }

  /** About `count` round tick values covering [lo, hi], each with its label. */
  function ticks(lo, hi, count) {
    var raw = (hi - lo) / Math.max(count, 1);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * mag; })
      .find(function (s) { return s >= raw; }) || 10 * mag;
    var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (step / mag === 2.5 ? 1 : 0));
    var out = [];
    for (var i = Math.ceil(lo / step); i * step <= hi + step * 1e-9; i++) {
      var t = i * step, a = Math.abs(t);
      var label = a !== 0 && (a >= 1e5 || decimals > 6) ? t.toExponential(2) : t.toFixed(Math.min(decimals, 20));
      out.push({value: t, label: label});
    }
    return out;
  }

  /** Index of the element of the sorted array xs nearest to x. */
  function nearest(xs, x) {
    var lo = 0, hi = xs.length - 1;
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (xs[mid] < x) lo = mid; else hi = mid;
    }
    return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
  }

  function extent(series, key) {
    var lo = Infinity, hi = -Infinity;
    series.forEach(function (s) {
      s[key].forEach(function (v) { if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    });
    if (lo === hi) { lo -= lo === 0 ? 1 : Math.abs(lo) * 0.1; hi += hi === 0 ? 1 : Math.abs(hi) * 0.1; }
    return [lo, hi];
  }

  /** Draw `chart` into `figure`, as wide as the figure (text stays at its CSS size on a phone). */
  function drawChart(figure, chart) {
    var W = Math.max(280, Math.round(figure.clientWidth - 16));
    var H = Math.round(Math.min(320, Math.max(220, W * 0.5)));
    var hiddenSeries = figure.hiddenSeries || (figure.hiddenSeries = {});
    var series = chart.series;
    var xr = extent(series, "x"), yr = extent(series, "y");
    var pad = (yr[1] - yr[0]) * 0.05;
    yr = [yr[0] - pad, yr[1] + pad];
    var pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    function sx(x) { return M.left + (x - xr[0]) / (xr[1] - xr[0]) * pw; }
    function sy(y) { return M.top + (1 - (y - yr[0]) / (yr[1] - yr[0])) * ph; }

    var names = series.map(function (s) { return s.name; }).join(", ");
    var svg = svgEl("svg", {viewBox: "0 0 " + W + " " + H, "class": "chart-svg", role: "img", tabindex: "0",
                            "aria-label": chart.title + ": line chart of " + names + " against " + chart.xLabel +
                                          ". Use the left and right arrow keys to read values."});
    ticks(yr[0], yr[1], ph < 200 ? 4 : 5).forEach(function (t) {
      svgEl("line", {x1: M.left, x2: W - M.right, y1: sy(t.value), y2: sy(t.value), "class": "grid"}, svg);
      svgEl("text", {x: M.left - 6, y: sy(t.value) + 4, "text-anchor": "end"}, svg).textContent = t.label;
    });
    ticks(xr[0], xr[1], Math.max(2, Math.floor(pw / 90))).forEach(function (t) {
      svgEl("line", {x1: sx(t.value), x2: sx(t.value), y1: M.top + ph, y2: M.top + ph + 5, "class": "axis"}, svg);
      svgEl("text", {x: sx(t.value), y: M.top + ph + 18, "text-anchor": "middle"}, svg).textContent = t.label;
    });
    svgEl("line", {x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph, "class": "axis"}, svg);
    svgEl("line", {x1: M.left, x2: M.left, y1: M.top, y2: M.top + ph, "class": "axis"}, svg);
    svgEl("text", {x: M.left + pw / 2, y: H - 6, "text-anchor": "middle"}, svg).textContent = chart.xLabel;
    svgEl("text", {x: 14, y: M.top + ph / 2, "text-anchor": "middle",
                   transform: "rotate(-90 14 " + (M.top + ph / 2) + ")"}, svg).textContent = chart.yLabel;

    var cursor = svgEl("line", {y1: M.top, y2: M.top + ph, "class": "cursor hidden"}, svg);
    var drawn = series.map(function (s, i) {
      var color = COLORS[i % COLORS.length], dash = DASHES[Math.floor(i / COLORS.length) % DASHES.length];
      var g = svgEl("g", {"data-series": s.name}, svg);
      var d = s.x.map(function (x, j) { return (j ? "L" : "M") + sx(x).toFixed(2) + " " + sy(s.y[j]).toFixed(2); });
      svgEl("path", {d: d.join(""), stroke: color, "stroke-dasharray": dash, "class": "series"}, g);
      if (s.x.length === 1) svgEl("circle", {cx: sx(s.x[0]), cy: sy(s.y[0]), r: 3, fill: color}, g);
      var dot = svgEl("circle", {r: 4, fill: color, "class": "hidden"}, svg);
      var visible = !hiddenSeries[s.name];
      g.classList.toggle("hidden", !visible);
      return {s: s, g: g, dot: dot, color: color, dash: dash, visible: visible};
    });
    figure.appendChild(svg);

    var legend = htmlEl("ul", {"class": "legend", "aria-label": "series of " + chart.title}, figure);
    drawn.forEach(function (item) {
      var li = htmlEl("li", {}, legend);
      var button = htmlEl("button", {type: "button", "aria-pressed": String(item.visible),
                                     title: "show or hide " + item.s.name}, li);
      var swatch = htmlEl("span", {"class": "swatch", "aria-hidden": "true"}, button);
      swatch.style.borderTopColor = item.color;
      if (item.dash) swatch.style.borderTopStyle = "dashed";
      htmlEl("span", {}, button, item.s.name);
      button.addEventListener("click", function () {
        item.visible = !item.visible;
        hiddenSeries[item.s.name] = !item.visible;
        button.setAttribute("aria-pressed", String(item.visible));
        item.g.classList.toggle("hidden", !item.visible);
        if (!item.visible) item.dot.classList.add("hidden");
      });
    });

    var tip = htmlEl("div", {"class": "tooltip", role: "status", hidden: ""}, figure);
    var longest = series.reduce(function (a, s) { return s.x.length > a.x.length ? s : a; }, series[0]);
    var keyIndex = -1;

    function show(x) {
      var shown = drawn.filter(function (d) { return d.visible; });
      if (!shown.length) return hide();
      tip.textContent = "";
      var cx = null;
      shown.forEach(function (item) {
        var j = nearest(item.s.x, x), px = item.s.x[j], py = item.s.y[j];
        if (cx === null) {
          cx = px;
          htmlEl("div", {"class": "tip-x"}, tip, chart.xLabel + " " + fmt(px));
        }
        item.dot.setAttribute("cx", sx(px));
        item.dot.setAttribute("cy", sy(py));
        item.dot.classList.remove("hidden");
        var line = htmlEl("div", {"class": "tip-value", "data-series": item.s.name,
                                   "data-x": String(px), "data-value": String(py)}, tip);
        var sw = htmlEl("span", {"class": "swatch", "aria-hidden": "true"}, line);
        sw.style.borderTopColor = item.color;
        line.appendChild(document.createTextNode(" " + item.s.name + ": " + fmt(py)));
      });
      cursor.setAttribute("x1", sx(cx));
      cursor.setAttribute("x2", sx(cx));
      cursor.classList.remove("hidden");
      tip.hidden = false;
      var rect = svg.getBoundingClientRect(), box = figure.getBoundingClientRect();
      var left = rect.left - box.left + sx(cx) * rect.width / W;
      var flip = left > box.width / 2;
      tip.style.left = flip ? "" : (left + 12) + "px";
      tip.style.right = flip ? (box.width - left + 12) + "px" : "";
      tip.style.top = (rect.top - box.top + 8) + "px";
    }

    function hide() {
      tip.hidden = true;
      cursor.classList.add("hidden");
      drawn.forEach(function (d) { d.dot.classList.add("hidden"); });
    }

    svg.addEventListener("pointermove", function (e) {
      var rect = svg.getBoundingClientRect();
      var px = (e.clientX - rect.left) * W / rect.width;
      if (px < M.left || px > W - M.right) return hide();
      show(xr[0] + (px - M.left) / pw * (xr[1] - xr[0]));
    });
    svg.addEventListener("pointerleave", hide);
    svg.addEventListener("blur", hide);
    svg.addEventListener("keydown", function (e) {
      var n = longest.x.length, step = {ArrowRight: 1, ArrowLeft: -1, PageDown: 10, PageUp: -10}[e.key];
      if (step !== undefined) keyIndex = Math.min(n - 1, Math.max(0, (keyIndex < 0 ? 0 : keyIndex + step)));
      else if (e.key === "Home") keyIndex = 0;
      else if (e.key === "End") keyIndex = n - 1;
      else if (e.key === "Escape") { keyIndex = -1; return hide(); }
      else return;
      e.preventDefault();
      show(longest.x[keyIndex]);
    });
  }

  function setupQuiz(section, answers) {
    var tiles = Array.prototype.slice.call(section.querySelectorAll(".tile"));
    var marked = section.querySelector(".marked"), score = section.querySelector(".score");
    var reveal = section.querySelector(".reveal"), reset = section.querySelector(".reset");

    function picked(tile) { return tile.getAttribute("aria-pressed") === "true"; }
    function count() {
      var n = tiles.filter(picked).length;
      marked.textContent = n + " marked as fake.";
    }
    tiles.forEach(function (tile) {
      tile.addEventListener("click", function () {
        if (section.classList.contains("revealed")) return;
        tile.setAttribute("aria-pressed", String(!picked(tile)));
        count();
      });
    });
    reveal.addEventListener("click", function () {
      var right = 0, found = 0, falseAlarms = 0, fakes = 0;
      tiles.forEach(function (tile, i) {
        var fake = answers[i], said = picked(tile), ok = fake === said;
        right += ok ? 1 : 0;
        fakes += fake ? 1 : 0;
        found += fake && said ? 1 : 0;
        falseAlarms += !fake && said ? 1 : 0;
        tile.classList.add(fake ? "is-fake" : "is-real", ok ? "right" : "wrong");
        tile.querySelector(".verdict").textContent = (fake ? "fake" : "real") + (ok ? " ✓" : " ✗");
        tile.querySelector("img").alt = "quiz image " + (i + 1) + " of " + tiles.length + ": " +
          (fake ? "fake" : "real") + (said ? ", you marked it fake" : ", you did not mark it") +
          (ok ? " (right)" : " (wrong)");
        tile.setAttribute("aria-disabled", "true");
      });
      section.classList.add("revealed");
      score.dataset.right = right;
      score.dataset.total = tiles.length;
      score.dataset.found = found;
      score.dataset.falseAlarms = falseAlarms;
      score.textContent = "Score: " + right + " of " + tiles.length + " right. You found " + found + " of " +
        fakes + " fakes and marked " + falseAlarms + " of " + (tiles.length - fakes) + " real images as fake.";
      reveal.disabled = true;
      reset.focus();
    });
    reset.addEventListener("click", function () {
      tiles.forEach(function (tile, i) {
        tile.setAttribute("aria-pressed", "false");
        tile.removeAttribute("aria-disabled");
        tile.classList.remove("is-fake", "is-real", "right", "wrong");
        tile.querySelector(".verdict").textContent = "";
        tile.querySelector("img").alt = "quiz image " + (i + 1) + " of " + tiles.length;
      });
      section.classList.remove("revealed");
      score.textContent = "";
      ["right", "total", "found", "falseAlarms"].forEach(function (k) { delete score.dataset[k]; });
      reveal.disabled = false;
      count();
    });
  }

  /** (Re)draw every chart whose figure changed width by more than a few pixels since its last drawing. */
  function drawCharts(data) {
    document.querySelectorAll("figure[data-chart]").forEach(function (figure) {
      var chart = data.charts[figure.dataset.chart];
      if (!chart || Math.abs((figure.drawnWidth || 0) - figure.clientWidth) < 24) return;
      figure.querySelectorAll("svg.chart-svg, .legend, .tooltip").forEach(function (e) { e.remove(); });
      figure.drawnWidth = figure.clientWidth;
      drawChart(figure, chart);
    });
  }

  var data = JSON.parse(document.getElementById("report-data").textContent);
  drawCharts(data);
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () { drawCharts(data); }, 150);
  });
  Object.keys(data.quizzes).forEach(function (id) {
    var section = document.getElementById(id);
    if (section) setupQuiz(section, data.quizzes[id]);
  });
  document.documentElement.dataset.ready = "true";
}());
