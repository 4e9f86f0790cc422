// @ts-check
/**
 * The only module that touches Plotly (loaded as a classic script from /static/plotly.min.js, which
 * the server serves from the installed `plotly` package): metric charts, the confusion matrix and the
 * tensor views' plots. Everything here takes plain data and a container, and themes it from
 * style.css's variables; what to draw is decided elsewhere.
 *
 * Charts draw with `Plotly.react` and a fixed `uirevision`, so a redraw with new points keeps the
 * user's zoom; `resetZoom` changes the revision.
 */

import { downsampleAround, downsampleMinMax, emaSmooth, xValues } from "./series.js";

/** @typedef {import("./series.js").SeriesData} SeriesData */
/** @typedef {import("./series.js").XMode} XMode */
/** @typedef {HTMLElement & {data?: any[], layout?: any, on?: (name: string, fn: (e: any) => void) => void}} PlotElement */

/**
 * Plotly.js, once its script (loaded `async` by index.html, so that the API calls start while it
 * compiles) has run.
 * @returns {Promise<any>}
 */
export function loadPlotly() {
  const ready = /** @type {any} */ (globalThis).Plotly;
  if (ready) return Promise.resolve(ready);
  const script = document.getElementById("plotly-js");
  return new Promise((resolve, reject) => {
    script?.addEventListener("load", () => resolve(/** @type {any} */ (globalThis).Plotly));
    script?.addEventListener("error", () => reject(new Error("Plotly.js did not load from /static/plotly.min.js")));
    if (!script) reject(new Error("index.html has no #plotly-js script"));
  });
}

/** For charts that exist already (so Plotly has loaded). @returns {any} */
function plotly() {
  return /** @type {any} */ (globalThis).Plotly;
}

/** Colours of the current theme, read from the CSS custom properties of style.css. */
function theme() {
  const css = getComputedStyle(document.documentElement);
  const v = (/** @type {string} */ name, /** @type {string} */ fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    fg: v("--fg", "#1f2328"),
    muted: v("--muted", "#656d76"),
    grid: v("--grid", "#d8dee4"),
    accent: v("--accent", "#0969da"),
    danger: v("--danger", "#cf222e"),
    palette: [v("--c1", "#0969da"), v("--c2", "#d1242f"), v("--c3", "#1a7f37"), v("--c4", "#8250df"),
      v("--c5", "#bf8700"), v("--c6", "#0e7490"), v("--c7", "#c2410c"), v("--c8", "#6e7781")],
  };
}

/** Lines, with markers while a series is short enough for them to help (a few evaluations). @param {number} n */
function mode(n) {
  return n < 2 ? "markers" : n <= 60 ? "lines+markers" : "lines";
}

/**
 * @param {XMode} xMode
 * @param {string} title
 * @param {boolean} yLog
 * @param {number} revision
 */
function baseLayout(xMode, title, yLog, revision) {
  const t = theme();
  const axis = { gridcolor: t.grid, zerolinecolor: t.grid, linecolor: t.grid, tickfont: { color: t.muted } };
  return {
    title: { text: title, font: { size: 13, color: t.fg }, x: 0.01, xanchor: "left" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: t.fg, size: 11 },
    margin: { l: 52, r: 12, t: 30, b: 36 },
    height: 260,
    showlegend: false,
    hovermode: "closest",
    uirevision: revision,
    xaxis: {
      ...axis,
      type: xMode === "wall" ? "date" : "linear",
      title: { text: xMode === "step" ? "step" : xMode === "relative" ? "seconds since start" : "", font: { size: 10 } },
    },
    yaxis: { ...axis, type: yLog ? "log" : "linear", exponentformat: "e" },
  };
}

/**
 * @param {string} filename
 */
function config(filename) {
  return {
    responsive: true,
    displaylogo: false,
    // nothing leaves the machine: no "Share chart" upload to Plotly's cloud
    modeBarButtonsToRemove: ["lasso2d", "select2d", "sendChartToCloud"],
    toImageButtonOptions: { format: "png", filename, scale: 2 },
  };
}

/**
 * `visible`: the steps a zoomed chart shows, which get the whole point budget. `appendFrom`: the
 * caller knows that `series` only gained points since the last draw, from this index on. `markers`:
 * points drawn over the line, one per anomaly (anomalies.js `anomalyMarkers`); a click on one reports
 * its step like a click on the line.
 * @typedef {SeriesData & {kind: string[], text: string[]}} Markers
 * @typedef {{
 *   title: string, series: SeriesData, smoothing: number, yLog: boolean, xMode: XMode,
 *   origin: number, revision: number, filename: string, color?: string, maxDrawn?: number,
 *   visible?: [number, number]|null, appendFrom?: number, markers?: Markers|null,
 * }} SeriesChart
 */

/** Marker symbols per anomaly kind (anomaly.py's detectors). */
const MARKER_SYMBOLS = /** @type {Record<string, string>} */ ({ nan: "x", spike: "triangle-up", grad_spike: "diamond" });

/**
 * What each metric chart was last drawn with, and how many points its raw trace holds.
 * @type {WeakMap<HTMLElement, {key: string, drawn: number}>}
 */
const drawnCharts = new WeakMap();

/**
 * Draw one metric: the raw line, and when smoothing is on, the smoothed line over a faint raw one.
 * Live points are appended to the traces (Plotly.extendTraces) while the settings stay and the drawn
 * points stay within twice the budget; then the chart is drawn again, bucketed anew.
 * @param {PlotElement} el
 * @param {SeriesChart} chart
 * @returns {Promise<"appended"|"drawn">}
 */
export async function drawSeries(el, chart) {
  const t = theme();
  const color = chart.color ?? t.accent;
  const maxDrawn = chart.maxDrawn ?? Math.max(400, 2 * (el.clientWidth || 800));
  const visible = chart.visible;
  const markers = chart.markers?.step.length ? chart.markers : null;
  const key = JSON.stringify([chart.title, chart.smoothing, chart.yLog, chart.xMode, chart.origin, chart.revision,
    color, maxDrawn, visible, markers && [markers.step, markers.value, markers.kind]]);
  const last = drawnCharts.get(el);
  const from = chart.appendFrom;
  const added = from === undefined ? 0 : chart.series.step.length - from;
  // more than 60 drawn: the traces are plain lines already (see mode())
  if (last && last.key === key && from !== undefined && last.drawn > 60 && last.drawn + added <= 2 * maxDrawn) {
    if (added > 0) {
      await appendPoints(el, chart, from);
      last.drawn += added;
    }
    setDrawnData(el, chart.series);
    return "appended";
  }
  // Plotly keeps the arrays it is given as the traces' data: they must not be the page's own buffers
  // (downsampling returns a short series as it is), or a point the buffer gains would be appended twice.
  const own = { step: chart.series.step.slice(), value: chart.series.value.slice(), time: chart.series.time.slice() };
  /** @param {SeriesData} series */
  const thin = (series) => (visible ? downsampleAround(series, visible[0], visible[1], maxDrawn) : downsampleMinMax(series, maxDrawn));
  const raw = thin(own);
  const smoothing = chart.smoothing > 0;
  const traces = [{
    type: "scatter", mode: mode(raw.step.length), name: "raw",
    x: xValues(raw, chart.xMode, chart.origin), y: raw.value, customdata: raw.step,
    line: { color, width: smoothing ? 1 : 1.6 }, marker: { color, size: 4 },
    opacity: smoothing ? 0.3 : 1,
    hovertemplate: "step %{customdata}<br>%{y:.5g}<extra>raw</extra>",
  }];
  if (smoothing) {
    const full = own;
    const smooth = thin({ step: full.step.slice(), value: emaSmooth(full.value, chart.smoothing), time: full.time.slice() });
    traces.push({
      type: "scatter", mode: smooth.step.length < 2 ? "markers" : "lines", name: "smoothed",
      x: xValues(smooth, chart.xMode, chart.origin), y: smooth.value, customdata: smooth.step,
      line: { color, width: 2 }, marker: { color, size: 5 }, opacity: 1,
      hovertemplate: "step %{customdata}<br>%{y:.5g}<extra>smoothed</extra>",
    });
  }
  // last, so that they are drawn on top and take the click (appendPoints extends traces 0 and 1 only)
  if (markers) {
    traces.push({
      type: "scatter", mode: "markers", name: "anomaly", x: xValues(markers, chart.xMode, chart.origin),
      y: markers.value, customdata: markers.step, text: markers.text.map(escapeTemplate),
      marker: { color: t.danger, size: 12, symbol: markers.kind.map((k) => MARKER_SYMBOLS[k] ?? "circle"),
        line: { color: t.danger, width: 2 } },
      hovertemplate: "%{text}<br>click to open the batch<extra>anomaly</extra>",
    });
  }
  await (await loadPlotly()).react(el, traces, baseLayout(chart.xMode, chart.title, chart.yLog, chart.revision), config(chart.filename));
  drawnCharts.set(el, { key, drawn: raw.step.length });
  setDrawnData(el, chart.series);
  return "drawn";
}

/**
 * Add the points of `chart.series` from index `from` on to the raw trace, and their smoothed values
 * (the moving average runs over the whole series: it is cheap beside a draw) to the smoothed one.
 * @param {PlotElement} el
 * @param {SeriesChart} chart
 * @param {number} from
 */
async function appendPoints(el, chart, from) {
  const s = chart.series;
  const tail = { step: s.step.slice(from), value: s.value.slice(from), time: s.time.slice(from) };
  const x = xValues(tail, chart.xMode, chart.origin);
  const update = { x: [x], y: [tail.value], customdata: [tail.step] };
  const indices = [0];
  if (chart.smoothing > 0) {
    update.x.push(x);
    update.y.push(emaSmooth(s.value, chart.smoothing).slice(from));
    update.customdata.push(tail.step);
    indices.push(1);
  }
  await (await loadPlotly()).extendTraces(el, update, indices);
}

/** For tests and benchmarks: how many points the chart is drawn from, and the last step. */
function setDrawnData(/** @type {HTMLElement} */ el, /** @type {SeriesData} */ series) {
  el.dataset.points = String(series.step.length);
  el.dataset.lastStep = String(series.step.at(-1) ?? "");
}

/**
 * Overlay one metric of several jobs, each in its own colour, with a legend. With smoothing, each job's
 * raw line stays drawn, faint, under its smoothed one (one legend entry for both).
 * @param {PlotElement} el
 * @param {{name: string, series: SeriesData, origin: number}[]} lines
 * @param {{title: string, smoothing: number, yLog: boolean, xMode: XMode, revision: number}} options
 */
export async function drawCompare(el, lines, options) {
  const t = theme();
  const smoothing = options.smoothing > 0;
  const traces = lines.flatMap((line, i) => {
    const color = t.palette[i % t.palette.length];
    const hovertemplate = `${escapeTemplate(line.name)}<br>step %{customdata}<br>%{y:.5g}<extra></extra>`;
    /** @param {SeriesData} series @param {boolean} faint */
    const trace = (series, faint) => {
      const drawn = downsampleMinMax(series, 2000);
      return {
        type: "scatter", mode: faint ? "lines" : mode(drawn.step.length), name: line.name, legendgroup: String(i),
        showlegend: !faint, opacity: faint ? 0.3 : 1, hovertemplate,
        x: xValues(drawn, options.xMode, line.origin), y: drawn.value, customdata: drawn.step,
        line: { color, width: faint ? 1 : 2 }, marker: { color, size: 5 },
      };
    };
    if (!smoothing) return [trace(line.series, false)];
    return [trace(line.series, true), trace({ ...line.series, value: emaSmooth(line.series.value, options.smoothing) }, false)];
  });
  const layout = { ...baseLayout(options.xMode, options.title, options.yLog, options.revision), height: 380,
    showlegend: true, legend: { orientation: "h", y: -0.2 } };
  await (await loadPlotly()).react(el, traces, layout, config("compare"));
  el.dataset.traces = String(lines.length);
}

/** @param {string} text */
function escapeTemplate(text) {
  return text.replace(/[<>&%{}]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The confusion matrix as a heatmap: rows are true labels, columns predictions.
 * @param {PlotElement} el
 * @param {number[][]} matrix
 * @param {string[]} labels
 */
export async function drawConfusion(el, matrix, labels) {
  const t = theme();
  const names = labels.length === matrix.length ? labels : matrix.map((_, i) => String(i));
  const trace = {
    type: "heatmap", z: matrix, x: names, y: names, colorscale: "Blues", reversescale: true, showscale: false,
    texttemplate: "%{z}", hovertemplate: "true %{y}<br>predicted %{x}<br>%{z}<extra></extra>",
  };
  const size = Math.min(640, 120 + 48 * names.length);
  const layout = {
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { color: t.fg, size: 11 },
    margin: { l: 90, r: 10, t: 10, b: 70 }, height: size, width: size + 40,
    xaxis: { title: { text: "predicted" }, side: "bottom", type: "category" },
    yaxis: { title: { text: "true" }, autorange: "reversed", type: "category" },
  };
  await (await loadPlotly()).react(el, [trace], layout, config("confusion-matrix"));
}

/** Layout shared by the tensor views' plots: the theme's colours on both axes. */
function tensorLayout() {
  const t = theme();
  const axis = { gridcolor: t.grid, zerolinecolor: t.grid };
  return {
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { color: t.fg, size: 11 },
    margin: { l: 60, r: 10, t: 28, b: 50 }, xaxis: axis, yaxis: axis,
  };
}

/** Token labels on an axis beyond this many are thinned. */
const MAX_TICKS = 64;

/**
 * A tensor's histogram as bars (centres, widths and counts from tensordata.js `histogramBars`).
 * @param {PlotElement} el
 * @param {{x: number[], width: number[], y: number[]}} bars
 * @param {string} title
 */
export async function drawHistogram(el, bars, title) {
  const t = theme();
  const trace = { type: "bar", ...bars, marker: { color: t.accent }, hovertemplate: "%{x:.4g}: %{y}<extra></extra>" };
  await (await loadPlotly()).react(el, [trace],
    { ...tensorLayout(), title: { text: title, font: { size: 12 } }, height: 240, bargap: 0 }, config("histogram"));
}

/**
 * A heatmap with optional token labels on both axes (numeric axes with tick text, so repeated tokens
 * stay apart) and the labels in the hover.
 * @param {PlotElement} el
 * @param {(number|null)[][]} z
 * @param {{title: string, rowLabels?: string[], colLabels?: string[], zmin?: number, zmax?: number,
 *   diverging?: boolean, height?: number}} o
 */
export async function drawHeatmap(el, z, o) {
  const rows = z.length;
  const cols = rows ? z[0].length : 0;
  const rl = o.rowLabels ?? Array.from({ length: rows }, (_, i) => String(i));
  const cl = o.colLabels ?? Array.from({ length: cols }, (_, j) => String(j));
  const text = z.map((row, i) => row.map((_, j) => `${rl[i]} → ${cl[j]}`));
  const base = tensorLayout();
  /** @param {string[]} labels */
  const ticks = (labels) => {
    const step = Math.max(1, Math.ceil(labels.length / MAX_TICKS));
    const vals = labels.map((_, i) => i).filter((i) => i % step === 0);
    return { tickmode: "array", tickvals: vals, ticktext: vals.map((i) => labels[i]) };
  };
  const trace = {
    type: "heatmap", z, text, hovertemplate: "%{text}<br>%{z:.4g}<extra></extra>", zmin: o.zmin, zmax: o.zmax,
    colorscale: o.diverging ? "RdBu" : "Viridis", reversescale: Boolean(o.diverging), zmid: o.diverging ? 0 : undefined,
  };
  await (await loadPlotly()).react(el, [trace], {
    ...base, title: { text: o.title, font: { size: 12 } }, height: o.height ?? 420,
    margin: { l: o.rowLabels ? 90 : 50, r: 10, t: 28, b: o.colLabels ? 90 : 40 },
    xaxis: { ...base.xaxis, ...(o.colLabels ? ticks(cl) : {}), tickangle: o.colLabels ? -60 : 0 },
    yaxis: { ...base.yaxis, ...(o.rowLabels ? ticks(rl) : {}), autorange: "reversed" },
  }, config("heatmap"));
}

/**
 * The values of a 1-D tensor as a line over their index.
 * @param {PlotElement} el
 * @param {number[]} x
 * @param {(number|null)[]} y
 */
export async function drawValues(el, x, y) {
  const t = theme();
  await (await loadPlotly()).react(el, [{ type: "scatter", mode: "lines", x, y, line: { width: 1, color: t.accent } }],
    { ...tensorLayout(), height: 300 }, config("values"));
}

/**
 * Call `handler(step)` when a point is clicked (after the chart's first draw: Plotly adds `on` then).
 * @param {PlotElement} el
 * @param {(step: number) => void} handler
 */
export function onPointClick(el, handler) {
  el.on?.("plotly_click", (event) => {
    const point = event?.points?.[0];
    const step = Number(point?.customdata ?? point?.x);
    if (Number.isFinite(step)) handler(step);
  });
}

/**
 * Call `handler([from, to])` when the user zooms or pans the x axis of a chart, `handler(null)` when
 * it autoscales again (double click, Reset zoom).
 * @param {PlotElement} el
 * @param {(range: [number, number]|null) => void} handler
 */
export function onZoom(el, handler) {
  el.on?.("plotly_relayout", (event) => {
    if (event?.["xaxis.autorange"]) return handler(null);
    const range = event?.["xaxis.range"] ?? [event?.["xaxis.range[0]"], event?.["xaxis.range[1]"]];
    const [from, to] = range.map(Number);
    if (Number.isFinite(from) && Number.isFinite(to)) handler([from, to]);
  });
}

/** Forget the zoom of every chart in `root` (the next draw autoscales). @param {ParentNode} root */
export function resetZoom(root) {
  for (const el of /** @type {NodeListOf<PlotElement>} */ (root.querySelectorAll(".js-plotly-plot"))) {
    plotly().relayout(el, { "xaxis.autorange": true, "yaxis.autorange": true });
  }
}

/** Release a chart's listeners and WebGL/SVG. @param {HTMLElement} el */
export function purge(el) {
  if (el.classList.contains("js-plotly-plot")) plotly().purge(el);
}

