/**
 * `pnpm demo --html <file>`: the demo's summary as ONE self-contained HTML page. Nothing is fetched: the summary is
 * embedded as JSON and a small inline script draws the charts as inline SVG — per client, over time: throughput,
 * p99 latency, fallbacks and breaker state, with the fault windows shaded on every chart.
 *
 * The script marks what it drew, so a headless browser can check it (see `examples/test/demoReport.test.ts`):
 * `<body data-charts-drawn="N">` once all charts are drawn, and on each chart's `<figure>` `data-drawn` (series paths
 * drawn), `data-faults` (fault rectangles) and `data-markers` (breaker-open markers); `data-error` on `<body>` if
 * the script failed.
 */
import type { ClientSummary, Summary } from "./run.js"

export interface ReportOptions {
  /** Shown in the page header (default: now). */
  readonly generatedAt?: Date | undefined
}

/** The charts the page draws, in order (also the `<figure>` ids, `chart-<id>`). */
export const chartIds = ["throughput", "latency", "fallbacks", "breaker"] as const

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

/** JSON that is safe inside `<script>`: no `</script>` or `<!--` can appear in it. */
const embedJson = (value: unknown): string => JSON.stringify(value).replace(/</g, "\\u003c")

const msText = (value: number): string =>
  value === 0 ? "0" : value < 1 ? value.toFixed(2) : value < 10 ? value.toFixed(1) : value < 10_000 ? String(Math.round(value)) : `${(value / 1000).toFixed(1)} s`

const num = (n: number): string => n.toLocaleString("en-US")

const summaryTable = (summary: Summary): string => {
  const s = summary.clients.steadfast
  const i = summary.clients.ioredis
  const h = summary.clients.hybrid
  /** steadfast, then the hybrid client and ioredis when they ran. */
  const columns = [s, ...(h === undefined ? [] : [h]), ...(i === undefined ? [] : [i])]
  const titles: Record<ClientSummary["client"], string> = { steadfast: "steadfast", hybrid: "steadfast hybrid", ioredis: "ioredis (defaults)" }
  const recovered = (c: ClientSummary) =>
    c.recovered === null ? (summary.mode === "memory" ? "n/a (no Redis)" : "not checked") : c.recovered ? `yes, +${msText(c.recoveredAfterMs ?? 0)} ms` : "NO"
  const rows: Array<[string, (c: ClientSummary) => string, boolean]> = [
    ["operations", (c) => num(c.ops), false],
    ...(h === undefined ? [] : [[
      "L1 hit ratio",
      (c: ClientSummary) => (c.l1HitRatio === undefined || c.l1HitRatio === null ? "-" : `${c.l1HitRatio.toFixed(1)}%`),
      false
    ] as [string, (c: ClientSummary) => string, boolean]]),
    ["read / write errors (caller)", (c) => `${num(c.readErrors)} / ${num(c.writeErrors)}`, true],
    ["wrong values / stale reads", (c) => `${num(c.wrongValues)} / ${num(c.staleReads)}`, true],
    ["fallbacks (memory)", (c) => (c.client === "ioredis" ? "-" : num(c.fallbacks)), false],
    ["breaker opens", (c) => (c.client === "ioredis" ? "-" : num(c.breakerOpens)), false],
    ["p50 / p99 latency", (c) => `${msText(c.p50Ms)} / ${msText(c.p99Ms)} ms`, false],
    ["slowest operation", (c) => `${msText(c.maxMs)} ms`, false],
    ["seconds with 0 ops done", (c) => num(c.secondsWithoutProgress), true],
    ["recovered (Redis read)", recovered, false]
  ]
  const cell = (c: ClientSummary, f: (c: ClientSummary) => string, flag: boolean) => {
    const text = f(c)
    const bad = flag && /[1-9]/.test(text)
    return `<td${bad ? " class=\"bad\"" : ""}>${escape(text)}</td>`
  }
  return `<table class="summary">
<thead><tr><th></th>${columns.map((c) => `<th class="${c.client}">${escape(titles[c.client])}</th>`).join("")}</tr></thead>
<tbody>
${rows.map(([label, f, flag]) => `<tr><th>${escape(label)}</th>${columns.map((c) => cell(c, f, flag)).join("")}</tr>`).join("\n")}
</tbody>
</table>`
}

/**
 * The page for a finished demo run. Pure: the same summary (and date) gives the same page.
 */
export const renderReport = (summary: Summary, options: ReportOptions = {}): string => {
  const generatedAt = (options.generatedAt ?? new Date()).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")
  const where = summary.mode === "memory"
    ? "memory only (no Redis)"
    : summary.topology === "cluster" || summary.topology === "sentinel"
    ? `${summary.redis.note ?? summary.topology} · redis-server ${summary.redis.version ?? ""}`
    : `${summary.mode === "spawned" ? "spawned redis-server" : "REDIS_URL"} ${summary.redis.version ?? ""} · ${summary.redis.url ?? ""}`
  const w = summary.workload
  const faultList = summary.faults.length === 0
    ? "<li>none (no Redis: no network faults)</li>"
    : summary.faults.map((f) =>
      `<li><span class="swatch fault"></span>${escape(f.fault)}: ${f.startedAtS.toFixed(1)}–${f.endedAtS.toFixed(1)} s</li>`
    ).join("")
  const figures = chartIds.map((id) => `<figure class="chart" id="chart-${id}" data-metric="${id}"></figure>`).join("\n")
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Steadfast chaos demo · ${escape(String(summary.durationS))} s</title>
<style>${style}</style>
</head>
<body>
<header>
<h1>Steadfast chaos demo</h1>
<p class="meta">${escape(generatedAt)} · ${escape(String(summary.elapsedS))} s run (${escape(String(summary.durationS))} s planned${
    summary.stoppedEarly ? ", stopped early" : ""
  }) · ${escape(where)} · ${w.concurrency} workers per client, ${Math.round(w.readRatio * 100)}% GET, ${w.keys} keys</p>
</header>
<section class="top">
<div class="verdict">
${
    summary.verdict.lines.map((line, index) =>
      `<p class="${
        line.startsWith("FINDING")
          ? "finding"
          : line.startsWith("Steadfast")
          ? "held"
          : index === 0
          ? (summary.verdict.steadfastHeld ? "held" : "finding")
          : ""
      }">${escape(line)}</p>`
    ).join("\n")
  }
<p class="faults-title">Fault windows (shaded on every chart):</p>
<ul class="faults">${faultList}</ul>
</div>
${summaryTable(summary)}
</section>
<p id="error" class="error" hidden></p>
<noscript><p class="error">The charts are drawn by the page's inline script: enable JavaScript to see them.</p></noscript>
${figures}
<script type="application/json" id="demo-data">${embedJson(summary)}</script>
<script>${script}</script>
</body>
</html>
`
}

const style = `
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 16px 20px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 2px; }
.meta { color: #666; margin: 0 0 10px; }
.top { display: flex; gap: 28px; align-items: flex-start; margin-bottom: 8px; }
.verdict { flex: 1; }
.verdict p { margin: 0 0 6px; }
.verdict .held { color: #1b5e20; font-weight: 600; }
.verdict .finding { color: #b71c1c; font-weight: 600; }
.faults-title { margin-top: 8px !important; color: #555; }
ul.faults { margin: 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 4px 16px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -2px; }
.swatch.fault { background: rgba(245, 166, 35, 0.35); border: 1px solid rgba(200, 120, 0, 0.6); }
table.summary { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.summary th, table.summary td { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }
table.summary tbody th { text-align: left; font-weight: normal; color: #555; }
table.summary .steadfast { color: #1565c0; }
table.summary .ioredis { color: #d84315; }
table.summary .hybrid { color: #2e7d32; }
table.summary td.bad { color: #b71c1c; font-weight: 600; }
figure.chart { margin: 6px 0 0; }
figure.chart svg { width: 100%; height: auto; display: block; }
.error { color: #b71c1c; font-weight: 600; }
`

// The drawing script, embedded as is. Plain ES2020 without template literals (this is a template literal).
const script = String.raw`
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var body = document.body;
  function fail(error) {
    var message = String((error && error.message) || error);
    body.setAttribute("data-error", message);
    var p = document.getElementById("error");
    p.textContent = "The charts could not be drawn: " + message;
    p.hidden = false;
  }
  function el(name, attrs, parent, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function msLabel(v) {
    if (v >= 1000) return (v / 1000) + " s";
    return String(Math.round(v * 1000) / 1000);
  }
  function niceStep(range, count) {
    var raw = range / Math.max(count, 1);
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= raw) return steps[i] * p;
    return 10 * p;
  }
  try {
    var data = JSON.parse(document.getElementById("demo-data").textContent);
    var series = data.series || [];
    var faults = data.faults || [];
    var clients = Object.keys(data.clients || {});
    var colors = { steadfast: "#1565c0", ioredis: "#d84315", hybrid: "#2e7d32" };
    var labels = { steadfast: "steadfast", ioredis: "ioredis (defaults)", hybrid: "steadfast hybrid" };
    var xMax = Math.max(data.durationS || 0, 1);
    series.forEach(function (r) { xMax = Math.max(xMax, r.t); });
    faults.forEach(function (f) { xMax = Math.max(xMax, f.endedAtS); });
    var row = function (r, c) { return (r.clients && r.clients[c]) || null; };
    var hasBreaker = function (c) { return series.some(function (r) { var v = row(r, c); return v && v.breaker !== null && v.breaker !== "NONE"; }); };
    var hasFallbacks = function (c) { return series.some(function (r) { var v = row(r, c); return v && v.fallbacks !== null && v.fallbacks !== undefined; }); };
    var state = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 };

    // Each line: a value per row (null: no point, the line breaks there), drawn at the middle of its one-second window.
    var charts = [
      {
        id: "throughput", title: "Throughput", yLabel: "operations / s", scale: "linear",
        lines: clients.map(function (c) {
          return { client: c, label: labels[c] || c, value: function (r) { var v = row(r, c); return v ? (v.opsPerS !== undefined ? v.opsPerS : v.ops) : null; } };
        })
      },
      {
        id: "latency", title: "p99 latency", yLabel: "ms (log scale)", scale: "log",
        note: "solid: p99 of the operations completed in that second (none completed: gap) · dashed: age of the oldest operation still waiting > 1 s",
        lines: clients.map(function (c) {
          return { client: c, label: (labels[c] || c) + " p99", value: function (r) { var v = row(r, c); return v && v.ops > 0 ? v.p99Ms : null; } };
        }).concat(clients.map(function (c) {
          return { client: c, label: (labels[c] || c) + " oldest waiting", dashed: true, optional: true,
            value: function (r) { var v = row(r, c); return v && v.stuck > 0 ? v.oldestMs : null; } };
        }))
      },
      {
        id: "fallbacks", title: "Fallbacks", yLabel: "operations served from memory / s", scale: "linear",
        lines: clients.filter(hasFallbacks).map(function (c) {
          return { client: c, label: labels[c] || c, value: function (r) { var v = row(r, c); return v ? v.fallbacks : null; } };
        }),
        absent: clients.filter(function (c) { return !hasFallbacks(c); }).map(function (c) { return (labels[c] || c) + ": no fallback"; })
      },
      {
        id: "breaker", title: "Circuit breaker", yLabel: "state", scale: "state",
        note: "state when each second's row was taken · triangles: the breaker opened during that second (+n times)",
        lines: clients.filter(hasBreaker).map(function (c) {
          return { client: c, label: labels[c] || c, step: true, value: function (r) { var v = row(r, c); return v && v.breaker in state ? state[v.breaker] : null; } };
        }),
        absent: clients.filter(function (c) { return !hasBreaker(c); }).map(function (c) { return (labels[c] || c) + ": no breaker"; })
      }
    ];

    var W = 1200, L = 78, R = 18, B = 44;
    var drawnCharts = 0;
    charts.forEach(function (chart, index) {
      var figure = document.getElementById("chart-" + chart.id);
      var T = index === 0 ? 58 : 34;
      var PH = chart.scale === "state" ? 110 : 170;
      var H = T + PH + B + (chart.note ? 14 : 0);
      var PW = W - L - R;
      var svg = el("svg", { viewBox: "0 0 " + W + " " + H, xmlns: NS, role: "img", "aria-label": chart.title + " over time" }, figure);
      var X = function (s) { return L + (s / xMax) * PW; };

      // Values and the y scale.
      var values = [];
      chart.lines.forEach(function (line) {
        line.points = series.map(function (r) { var y = line.value(r); return y === null || y === undefined || !isFinite(y) ? null : { x: r.t - 0.5, y: y, t: r.t }; });
        line.points.forEach(function (p) { if (p) values.push(p.y); });
      });
      var Y, ticks = [];
      if (chart.scale === "log") {
        var positive = values.filter(function (v) { return v > 0; });
        var lo = Math.pow(10, Math.floor(Math.log10(positive.length ? Math.min.apply(null, positive) : 0.1)));
        var hi = Math.pow(10, Math.ceil(Math.log10(positive.length ? Math.max.apply(null, positive) : 10)));
        lo = Math.max(lo, 0.01);
        if (hi <= lo) hi = lo * 10;
        Y = function (v) { var c = Math.min(Math.max(v, lo), hi); return T + PH - (Math.log10(c) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * PH; };
        for (var d = lo; d <= hi * 1.0001; d *= 10) ticks.push({ v: d, label: msLabel(d) });
      } else if (chart.scale === "state") {
        Y = function (v) { return T + PH - (v + 0.5) / 3 * PH; };
        ticks = [{ v: 0, label: "closed" }, { v: 1, label: "half-open" }, { v: 2, label: "open" }];
      } else {
        var max = values.length ? Math.max.apply(null, values) : 0;
        var step = niceStep(max > 0 ? max : 1, 5);
        var top = Math.max(step, Math.ceil(max / step) * step);
        Y = function (v) { return T + PH - (v / top) * PH; };
        for (var v = 0; v <= top + step / 2; v += step) ticks.push({ v: v, label: String(Math.round(v * 100) / 100) });
      }

      // Frame, grid and axes.
      el("text", { x: L, y: 18, "font-size": 15, "font-weight": 600, fill: "#222" }, svg, chart.title);
      ticks.forEach(function (t) {
        var y = Y(t.v);
        el("line", { x1: L, x2: L + PW, y1: y, y2: y, stroke: "#e6e6e6" }, svg);
        el("text", { x: L - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#555", class: "y-tick" }, svg, t.label);
      });
      var xStep = niceStep(xMax, 15);
      for (var s = 0; s <= xMax + 1e-9; s += xStep) {
        var x = X(s);
        el("line", { x1: x, x2: x, y1: T + PH, y2: T + PH + 4, stroke: "#888" }, svg);
        el("text", { x: x, y: T + PH + 16, "text-anchor": "middle", "font-size": 11, fill: "#555", class: "x-tick" }, svg, String(Math.round(s * 10) / 10));
      }
      el("rect", { x: L, y: T, width: PW, height: PH, fill: "none", stroke: "#bbb" }, svg);
      el("text", { x: L + PW / 2, y: T + PH + 34, "text-anchor": "middle", "font-size": 12, fill: "#333", class: "axis-label x" }, svg, "time since start (s)");
      el("text", { x: 16, y: T + PH / 2, "text-anchor": "middle", "font-size": 12, fill: "#333", class: "axis-label y",
        transform: "rotate(-90 16 " + (T + PH / 2) + ")" }, svg, chart.yLabel);
      if (chart.note) el("text", { x: L, y: H - 4, "font-size": 11, fill: "#777", class: "note" }, svg, chart.note);

      // Fault windows: shaded on every chart, named above the first one.
      var faultCount = 0, lastLabelEnd = [-1e9, -1e9];
      faults.forEach(function (f) {
        var x0 = X(f.startedAtS), x1 = X(f.endedAtS);
        var width = Math.max(x1 - x0, 4);
        var rect = el("rect", { x: x0, y: T, width: width, height: PH, fill: "rgba(245,166,35,0.28)", stroke: "rgba(200,120,0,0.55)",
          "stroke-width": 0.8, class: "fault", "data-fault": f.fault }, svg);
        el("title", {}, rect, f.fault + ": " + f.startedAtS + "–" + f.endedAtS + " s");
        faultCount++;
        if (index === 0) {
          var text = f.fault + " (" + f.startedAtS.toFixed(1) + "–" + f.endedAtS.toFixed(1) + " s)";
          var estimate = text.length * 6;
          var rowIndex = x0 > lastLabelEnd[0] + 6 ? 0 : x0 > lastLabelEnd[1] + 6 ? 1 : 0;
          lastLabelEnd[rowIndex] = x0 + estimate;
          el("text", { x: x0, y: T - 8 - rowIndex * 13, "font-size": 11, fill: "#a65c00", class: "fault-label" }, svg, text);
        }
      });

      // The series.
      var drawn = 0;
      chart.lines.forEach(function (line) {
        var color = colors[line.client] || "#555";
        var d = "", open = false, prev = null;
        line.points.forEach(function (p) {
          if (!p) { open = false; prev = null; return; }
          var x = line.step ? X(p.t) : X(p.x), y = Y(p.y);
          if (line.step) {
            // The state sampled at the end of a second holds until the next sample.
            if (!open) d += "M" + x.toFixed(1) + " " + y.toFixed(1);
            else d += "H" + x.toFixed(1) + "V" + y.toFixed(1);
          } else {
            d += (open ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
          }
          open = true;
          prev = p;
        });
        if (line.step && prev) d += "H" + X(Math.min(prev.t + 1, xMax)).toFixed(1);
        line.drawn = d !== "";
        if (d === "") return;
        el("path", { d: d, fill: "none", stroke: color, "stroke-width": line.dashed ? 1.5 : 2, "stroke-dasharray": line.dashed ? "5 4" : null,
          "stroke-linejoin": "round", class: "series", "data-client": line.client, "data-kind": line.dashed ? "oldest-waiting" : chart.id }, svg);
        if (!line.step) {
          line.points.forEach(function (p) {
            if (p) el("circle", { cx: X(p.x), cy: Y(p.y), r: line.dashed ? 2 : 2.6, fill: color, class: "point" }, svg);
          });
        }
        drawn++;
      });

      // Breaker opens within a second (the sampled state alone can miss an open that closed again).
      var markers = 0;
      if (chart.scale === "state") {
        clients.forEach(function (c) {
          series.forEach(function (r) {
            var v = row(r, c);
            if (!v || !v.breakerOpens) return;
            var x = X(r.t - 0.5), y = Y(2) - 10;
            var m = el("path", { d: "M" + (x - 5) + " " + (y - 8) + "L" + (x + 5) + " " + (y - 8) + "L" + x + " " + y + "Z", fill: colors[c] || "#555", class: "breaker-open" }, svg);
            el("title", {}, m, "opened " + v.breakerOpens + "× in the second ending at " + r.t + " s");
            el("text", { x: x, y: y - 11, "text-anchor": "middle", "font-size": 10, fill: "#333" }, svg, "+" + v.breakerOpens);
            markers++;
          });
        });
      }

      // Legend (top right): every line drawn, what is absent, and the fault shading.
      var items = [];
      chart.lines.forEach(function (line) { if (line.drawn || !line.optional) items.push({ color: colors[line.client] || "#555", dashed: line.dashed, label: line.label + (line.drawn ? "" : " (no data)") }); });
      (chart.absent || []).forEach(function (label) { items.push({ none: true, label: label }); });
      if (chart.scale === "state" && chart.lines.length) items.push({ marker: true, color: "#1565c0", label: "opened" });
      items.push({ fault: true, label: "fault window" });
      var legend = el("g", { class: "legend" }, svg);
      var lx = L + PW;
      for (var i = items.length - 1; i >= 0; i--) {
        var item = items[i];
        var width = item.label.length * 6.4 + (item.none ? 0 : 26);
        lx -= width + 14;
        var gy = 13;
        if (item.fault) el("rect", { x: lx, y: gy - 9, width: 18, height: 11, fill: "rgba(245,166,35,0.28)", stroke: "rgba(200,120,0,0.55)" }, legend);
        else if (item.marker) el("path", { d: "M" + (lx + 4) + " " + (gy - 8) + "L" + (lx + 14) + " " + (gy - 8) + "L" + (lx + 9) + " " + gy + "Z", fill: item.color }, legend);
        else if (!item.none) el("line", { x1: lx, x2: lx + 18, y1: gy - 4, y2: gy - 4, stroke: item.color, "stroke-width": item.dashed ? 1.5 : 2.5, "stroke-dasharray": item.dashed ? "5 4" : null }, legend);
        el("text", { x: lx + (item.none ? 0 : 24), y: gy, "font-size": 11.5, fill: item.none ? "#888" : "#333", "font-style": item.none ? "italic" : null }, legend, item.label);
      }

      figure.setAttribute("data-drawn", String(drawn));
      figure.setAttribute("data-faults", String(faultCount));
      figure.setAttribute("data-markers", String(markers));
      drawnCharts++;
    });
    body.setAttribute("data-charts-drawn", String(drawnCharts));
  } catch (error) {
    fail(error);
  }
})();
`
