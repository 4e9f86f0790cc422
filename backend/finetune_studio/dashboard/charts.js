// @ts-check
/**
 * The only module that touches Plotly: the compare overlay, the confusion matrix and the tensor
 * views' plots. Plotly.js (the full bundle of the installed `plotly` package, which the server serves
 * at /static/plotly.min.js) is loaded on the first of these draws, not with the page: 4.7 MB that
 * took about a second to compile. The metric charts, drawn on every job page and live, are uPlot's
 * (linechart.js); this module re-exports them so that callers have one charts module. Everything here
 * takes plain data and a container, and themes it from style.css's variables.
 *
 * Plotly charts draw with `Plotly.react` and a fixed `uirevision`, so a redraw keeps the user's zoom.
 */

import { isLineChart, onLineClick, onLineZoom, purgeLine, resetLineZoom, theme } from "./linechart.js";
import { downsampleMinMax, emaSmooth, xValues } from "./series.js";

export { chartState, drawSeries, linePng as chartPng, pointPosition } from "./linechart.js";

/** @typedef {import("./series.js").SeriesData} SeriesData */
/** @typedef {import("./series.js").XMode} XMode */
/** @typedef {HTMLElement & {data?: any[], layout?: any, on?: (name: string, fn: (e: any) => void) => void}} PlotElement */

/** @type {Promise<any>|null} */
let plotlyLoading = null;

/**
 * Plotly.js, loaded once, when a view first needs it.
 * @returns {Promise<any>}
 */
export function loadPlotly() {
  const ready = /** @type {any} */ (globalThis).Plotly;
  if (ready) return Promise.resolve(ready);
  plotlyLoading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/static/plotly.min.js";
    script.addEventListener("load", () => resolve(/** @type {any} */ (globalThis).Plotly));
    script.addEventListener("error", () => {
      plotlyLoading = null; // a later view tries again
      reject(new Error("Plotly.js did not load from /static/plotly.min.js"));
    });
    document.head.append(script);
  });
  return plotlyLoading;
}

/** For charts that exist already (so Plotly has loaded). @returns {any} */
function plotly() {
  return /** @type {any} */ (globalThis).Plotly;
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
 * Call `handler(step)` when a point (or an anomaly marker) of a metric chart is clicked, after its
 * first draw.
 * @param {HTMLElement} el
 * @param {(step: number) => void} handler
 */
export function onPointClick(el, handler) {
  onLineClick(el, handler);
}

/**
 * Call `handler([from, to])` when the user zooms the x axis of a metric chart, `handler(null)` when
 * it shows the whole run again (double click, Reset zoom).
 * @param {HTMLElement} el
 * @param {(range: [number, number]|null) => void} handler
 */
export function onZoom(el, handler) {
  onLineZoom(el, handler);
}

/** Forget the zoom of every chart in `root`. @param {ParentNode} root */
export function resetZoom(root) {
  resetLineZoom(root);
  for (const el of /** @type {NodeListOf<PlotElement>} */ (root.querySelectorAll(".js-plotly-plot"))) {
    plotly().relayout(el, { "xaxis.autorange": true, "yaxis.autorange": true });
  }
}

/** Whether `el` holds a drawn chart. @param {HTMLElement} el */
export function isDrawn(el) {
  return isLineChart(el) || el.classList.contains("js-plotly-plot");
}

/** Release a chart's listeners, canvas or SVG. @param {HTMLElement} el */
export function purge(el) {
  if (isLineChart(el)) purgeLine(el);
  else if (el.classList.contains("js-plotly-plot")) plotly().purge(el);
}

/** Release every chart in `root`. @param {ParentNode} root */
export function purgeCharts(root) {
  for (const el of root.querySelectorAll(".line-chart, .js-plotly-plot")) purge(/** @type {HTMLElement} */ (el));
}
