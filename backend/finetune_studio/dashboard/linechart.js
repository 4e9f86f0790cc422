// @ts-check
/**
 * The metric charts (one series: the raw line, the smoothed one over it, anomaly markers), drawn with
 * uPlot: a canvas line chart that loads in a few milliseconds (51 KB) and redraws a few thousand
 * points in about one, where Plotly's 4.7 MB bundle took about a second to load and a redraw 60-130 ms
 * (benchmarks/README.md, Dashboard). uPlot (MIT) is the npm package pinned in vendor/package.json, which
 * `make install` installs (npm ci); index.html loads it as a classic script before the modules.
 *
 * Lifecycle: a chart's first draw builds a uPlot in its element; later draws give it new data
 * (`setData`, the documented way to stream), keeping the x range while the user is zoomed; a change
 * that the options hold (title, y scale, x axis, colour, smoothing on or off) builds it anew. A drag
 * zooms the x axis, a double click shows the whole run again; both are reported to `onZoom`'s handler.
 */

import { formatValue } from "./format.js";
import { aroundIndices, emaSmooth, lowerBound, minMaxIndices } from "./series.js";

/** @typedef {import("./series.js").SeriesData} SeriesData */
/** @typedef {import("./series.js").XMode} XMode */
/** @typedef {SeriesData & {kind: string[], text: string[]}} Markers */
/**
 * `visible`: the steps a zoomed chart shows, which get the whole point budget. `appendFrom`: the
 * caller knows that `series` only gained points since the last draw, from this index on. `markers`:
 * one per anomaly (anomalies.js `anomalyMarkers`); a click on one reports its step like a click on
 * the line.
 * @typedef {{
 *   title: string, series: SeriesData, smoothing: number, yLog: boolean, xMode: XMode,
 *   origin: number, revision: number, filename: string, color?: string, maxDrawn?: number,
 *   visible?: [number, number]|null, appendFrom?: number, markers?: Markers|null,
 * }} SeriesChart
 */
/**
 * One drawn chart: the uPlot, the arrays it draws (x, raw values, smoothed values; `steps` gives each
 * drawn point's step), the markers in x units, and what the user did to it.
 * @typedef {{
 *   u: any, optionsKey: string, key: string, xs: number[], steps: number[], raw: (number|null)[],
 *   smooth: (number|null)[]|null, markers: {x: number[], y: (number|null)[], step: number[], kind: string[]}|null,
 *   yLog: boolean, zoomed: [number, number]|null, quiet: boolean, resize: ResizeObserver,
 *   onZoom: ((range: [number, number]|null) => void)|null, onClick: ((step: number) => void)|null,
 * }} LineChart
 */

/** @type {WeakMap<HTMLElement, LineChart>} */
const charts = new WeakMap();

const HEIGHT = 220;
/** A click within this many pixels of an anomaly marker opens that anomaly's step. */
const MARKER_HIT_PX = 10;

/** The uPlot constructor (vendor/uplot/uPlot.iife.min.js, loaded by index.html). @returns {any} */
function uPlot() {
  const lib = /** @type {any} */ (globalThis).uPlot;
  if (!lib) throw new Error("uPlot did not load from /static/vendor/node_modules/uplot/dist/uPlot.iife.min.js: "
    + "run `make install` (npm ci in backend/finetune_studio/dashboard/vendor)");
  return lib;
}

/** Colours of the current theme, read from the CSS custom properties of style.css. */
export function theme() {
  const css = getComputedStyle(document.documentElement);
  const v = (/** @type {string} */ name, /** @type {string} */ fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    fg: v("--fg", "#1f2328"),
    muted: v("--muted", "#656d76"),
    grid: v("--grid", "#d8dee4"),
    accent: v("--accent", "#0969da"),
    danger: v("--danger", "#cf222e"),
    bg: v("--bg", "#ffffff"),
    palette: [v("--c1", "#0969da"), v("--c2", "#d1242f"), v("--c3", "#1a7f37"), v("--c4", "#8250df"),
      v("--c5", "#bf8700"), v("--c6", "#0e7490"), v("--c7", "#c2410c"), v("--c8", "#6e7781")],
  };
}

/**
 * The x of each point for an axis mode: the step, seconds since `origin`, or UNIX seconds (uPlot's
 * time axis).
 * @param {SeriesData} s
 * @param {number} i
 * @param {XMode} mode
 * @param {number} origin
 */
function xOf(s, i, mode, origin) {
  return mode === "step" ? s.step[i] : mode === "relative" ? s.time[i] - origin : s.time[i];
}

/**
 * Draw one metric: the raw line, and when smoothing is on, the smoothed line over a faint raw one,
 * both thinned at the same points (min and max per bucket of the raw values: spikes stay). Live
 * points are appended to the drawn arrays while the settings stay and the drawn points stay within
 * twice the budget; then the chart is thinned anew.
 * @param {HTMLElement} el
 * @param {SeriesChart} chart
 * @returns {"appended"|"drawn"}
 */
export function drawSeries(el, chart) {
  const color = chart.color ?? theme().accent;
  const maxDrawn = chart.maxDrawn ?? Math.max(400, 2 * (el.clientWidth || 800));
  const visible = chart.visible ?? null;
  const markers = chart.markers?.step.length ? chart.markers : null;
  const smoothing = chart.smoothing > 0;
  const key = JSON.stringify([chart.title, chart.smoothing, chart.yLog, chart.xMode, chart.origin, chart.revision,
    color, maxDrawn, visible, markers && [markers.step, markers.value, markers.kind]]);
  const last = charts.get(el);
  const s = chart.series;
  const from = chart.appendFrom;
  const added = from === undefined ? 0 : s.step.length - from;
  // more than 60 drawn: plain lines already (no point markers to switch off)
  if (last && last.key === key && from !== undefined && last.steps.length > 60 && last.steps.length + added <= 2 * maxDrawn) {
    if (added > 0) {
      const smooth = last.smooth && emaSmooth(s.value, chart.smoothing);
      for (let i = from; i < s.step.length; i++) {
        last.xs.push(xOf(s, i, chart.xMode, chart.origin));
        last.steps.push(s.step[i]);
        last.raw.push(s.value[i]);
        last.smooth?.push(/** @type {(number|null)[]} */ (smooth)[i]);
      }
      setData(last, null);
    }
    setDrawnData(el, s);
    return "appended";
  }
  const indices = visible ? aroundIndices(s, visible[0], visible[1], maxDrawn) : minMaxIndices(s, maxDrawn);
  const smoothAll = smoothing ? emaSmooth(s.value, chart.smoothing) : null;
  const arrays = {
    xs: indices.map((i) => xOf(s, i, chart.xMode, chart.origin)),
    steps: indices.map((i) => s.step[i]),
    raw: indices.map((i) => s.value[i]),
    smooth: smoothAll && indices.map((i) => smoothAll[i]),
    markers: markers && {
      x: markers.step.map((_, i) => xOf(markers, i, chart.xMode, chart.origin)),
      y: markers.value, step: markers.step, kind: markers.kind,
    },
  };
  const fewPoints = indices.length <= 60;
  const optionsKey = JSON.stringify([chart.title, chart.yLog, chart.xMode, chart.revision, color, smoothing, fewPoints]);
  let line = last;
  if (!line || line.optionsKey !== optionsKey) {
    if (line) destroy(el, line);
    line = create(el, chart, color, fewPoints, optionsKey);
  }
  Object.assign(line, arrays, { key });
  setData(line, visible);
  setDrawnData(el, s);
  return "drawn";
}

/**
 * @param {HTMLElement} el
 * @param {SeriesChart} chart
 * @param {string} color
 * @param {boolean} fewPoints draw each point too (a few evaluations)
 * @param {string} optionsKey
 * @returns {LineChart}
 */
function create(el, chart, color, fewPoints, optionsKey) {
  const t = theme();
  const smoothing = chart.smoothing > 0;
  const axis = { stroke: t.muted, grid: { stroke: t.grid, width: 1 }, ticks: { stroke: t.grid, width: 1 },
    font: "11px system-ui, sans-serif", labelFont: "10px system-ui, sans-serif" };
  const xLabel = chart.xMode === "step" ? "step" : chart.xMode === "relative" ? "seconds since start" : "time";
  const points = { show: fewPoints, size: 5, fill: color, stroke: color };
  /** @type {LineChart} */
  const line = {
    u: null, optionsKey, key: "", xs: [], steps: [], raw: [], smooth: null, markers: null, yLog: chart.yLog,
    zoomed: null, quiet: false, resize: new ResizeObserver(() => {
      if (el.clientWidth && line.u && el.clientWidth !== line.u.width) line.u.setSize({ width: el.clientWidth, height: HEIGHT });
    }), onZoom: null, onClick: null,
  };
  const series = [
    { label: xLabel, value: (/** @type {any} */ _u, /** @type {number} */ v) => (v === null ? "–"
      : chart.xMode === "wall" ? new Date(v * 1000).toLocaleTimeString() : formatValue(v)) },
    { label: "raw", stroke: color, width: smoothing ? 1 : 1.6, alpha: smoothing ? 0.3 : 1, points,
      value: (/** @type {any} */ _u, /** @type {number|null} */ v) => formatValue(v) },
  ];
  if (smoothing) {
    series.push({ label: "smoothed", stroke: color, width: 2, alpha: 1, points: { ...points, show: false },
      value: (/** @type {any} */ _u, /** @type {number|null} */ v) => formatValue(v) });
  }
  const options = {
    title: chart.title, width: el.clientWidth || 600, height: HEIGHT,
    scales: { x: { time: chart.xMode === "wall" }, y: chart.yLog ? { distr: 3, log: 10 } : {} },
    // y ticks with the digits their spacing needs (uPlot's own rounded 0.6945 and 0.6950 both to 0.695)
    axes: [{ ...axis, label: chart.xMode === "wall" ? undefined : xLabel, labelSize: 16 },
      { ...axis, size: 52, values: (/** @type {any} */ _u, /** @type {(number|null)[]} */ ticks) => ticks.map((v) => (v == null ? "" : Number(v.toPrecision(6)).toString())) }],
    series,
    cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 6 } },
    legend: { show: true, live: true },
    hooks: {
      setScale: [(/** @type {any} */ u, /** @type {string} */ scale) => scale === "x" && scaled(line, u)],
      draw: [(/** @type {any} */ u) => drawMarkers(u, line, t.danger)],
    },
  };
  const Lib = uPlot();
  el.classList.add("line-chart");
  line.u = new Lib(options, [[], [], ...(smoothing ? [[]] : [])], el);
  listenForClicks(line);
  line.resize.observe(el);
  charts.set(el, line);
  return line;
}

/**
 * Give the uPlot the chart's arrays. The x range stays where the user zoomed, or on `visible`.
 * @param {LineChart} line
 * @param {[number, number]|null} visible
 */
function setData(line, visible) {
  // a log axis cannot place 0 or a negative value: they are gaps there
  const y = (/** @type {(number|null)[]} */ v) => (line.yLog ? v.map((x) => (x !== null && x > 0 ? x : null)) : v);
  const data = [line.xs, y(line.raw), ...(line.smooth ? [y(line.smooth)] : [])];
  const range = visible ?? line.zoomed;
  line.quiet = true;
  try {
    // batch: uPlot commits (and calls the setScale hook) now rather than in a microtask
    line.u.batch(() => {
      line.u.setData(data, true);
      if (range) line.u.setScale("x", { min: range[0], max: range[1] });
    });
  } finally {
    line.quiet = false;
  }
}

/**
 * The x scale changed: by the user (a drag, a double click) unless `setData` is at work.
 * @param {LineChart} line
 * @param {any} u
 */
function scaled(line, u) {
  if (line.quiet) return;
  const { min, max } = u.scales.x;
  const whole = !line.xs.length || (min <= line.xs[0] && max >= line.xs[line.xs.length - 1]);
  const zoomed = whole ? null : /** @type {[number, number]} */ ([min, max]);
  if (String(zoomed) === String(line.zoomed)) return; // a resize sets the scale again
  line.zoomed = zoomed;
  line.onZoom?.(zoomed);
}

/** Anomaly markers: x, triangle, diamond or circle, drawn over the lines. @param {any} u @param {LineChart} line @param {string} color */
function drawMarkers(u, line, color) {
  const m = line.markers;
  if (!m) return;
  const ctx = u.ctx;
  const r = 6 * devicePixelRatio;
  ctx.save();
  ctx.beginPath();
  ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
  ctx.clip();
  ctx.strokeStyle = color;
  ctx.lineWidth = 2 * devicePixelRatio;
  for (let i = 0; i < m.x.length; i++) {
    const value = m.y[i] ?? 0; // anomalies.js puts each marker on the loss's nearest finite value
    const cx = u.valToPos(m.x[i], "x", true);
    const cy = u.valToPos(line.yLog && value <= 0 ? u.scales.y.min : value, "y", true);
    ctx.beginPath();
    if (m.kind[i] === "nan") {
      ctx.moveTo(cx - r, cy - r); ctx.lineTo(cx + r, cy + r); ctx.moveTo(cx + r, cy - r); ctx.lineTo(cx - r, cy + r);
    } else if (m.kind[i] === "spike") {
      ctx.moveTo(cx, cy - r); ctx.lineTo(cx + r, cy + r); ctx.lineTo(cx - r, cy + r); ctx.closePath();
    } else if (m.kind[i] === "grad_spike") {
      ctx.moveTo(cx, cy - r); ctx.lineTo(cx + r, cy); ctx.lineTo(cx, cy + r); ctx.lineTo(cx - r, cy); ctx.closePath();
    } else {
      ctx.arc(cx, cy, r, 0, 2 * Math.PI);
    }
    ctx.stroke();
  }
  ctx.restore();
}

/**
 * Where a marker or a drawn point is, in page pixels (tests click there).
 * @param {HTMLElement} el
 * @param {number} step
 * @param {"raw"|"anomaly"} trace
 * @returns {[number, number]|null}
 */
export function pointPosition(el, step, trace) {
  const line = charts.get(el);
  if (!line) return null;
  const m = line.markers;
  let x;
  let y;
  if (trace === "anomaly") {
    const at = m?.step.indexOf(step) ?? -1;
    if (!m || at < 0) return null;
    [x, y] = [m.x[at], m.y[at]];
  } else {
    // a step that is not drawn (bucketed away): where it would be, at the level of the next drawn point
    const at = Math.min(lowerBound(line.steps, step), line.steps.length - 1);
    if (at < 0) return null;
    [x, y] = [line.steps[at] === step ? line.xs[at] : step, line.raw[at]];
  }
  const box = line.u.over.getBoundingClientRect();
  return [box.left + line.u.valToPos(x, "x"), box.top + line.u.valToPos(y ?? 0, "y")];
}

/**
 * A click (not the end of a drag) opens the step of the anomaly marker under it, or else of the point
 * nearest along x.
 * @param {LineChart} line
 */
function listenForClicks(line) {
  const over = line.u.over;
  let down = [0, 0];
  over.addEventListener("mousedown", (/** @type {MouseEvent} */ e) => { down = [e.clientX, e.clientY]; });
  over.addEventListener("click", (/** @type {MouseEvent} */ e) => {
    if (!line.onClick || Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 3) return;
    const box = over.getBoundingClientRect();
    const [px, py] = [e.clientX - box.left, e.clientY - box.top];
    const m = line.markers;
    if (m) {
      for (let i = 0; i < m.x.length; i++) {
        const mx = line.u.valToPos(m.x[i], "x");
        const my = line.u.valToPos(m.y[i] ?? 0, "y");
        if (Math.hypot(px - mx, py - my) <= MARKER_HIT_PX) return line.onClick(m.step[i]);
      }
    }
    const idx = line.u.cursor.idx;
    if (idx !== null && idx !== undefined && line.steps[idx] !== undefined) line.onClick(line.steps[idx]);
  });
}

/** For tests and benchmarks: how many points the chart is drawn from, and the last step. */
function setDrawnData(/** @type {HTMLElement} */ el, /** @type {SeriesData} */ series) {
  el.dataset.points = String(series.step.length);
  el.dataset.lastStep = String(series.step.at(-1) ?? "");
}

/**
 * What a chart draws, as the tests read it (finetune_studio/testing/dashboard_driver.py): its title,
 * y scale and each line (and the markers) with x, y and the step of each point.
 * @param {HTMLElement} el
 */
export function chartState(el) {
  const line = charts.get(el);
  if (!line) return null;
  const u = line.u;
  const traces = [{ name: "raw", x: line.xs, y: line.raw, steps: line.steps, opacity: u.series[1].alpha ?? 1 }];
  if (line.smooth) traces.push({ name: "smoothed", x: line.xs, y: line.smooth, steps: line.steps, opacity: 1 });
  if (line.markers) traces.push({ name: "anomaly", x: line.markers.x, y: line.markers.y, steps: line.markers.step, opacity: 1 });
  return { title: u.root.querySelector(".u-title")?.textContent ?? "", yType: line.yLog ? "log" : "linear", traces };
}

/**
 * The chart drawn in `el` as a PNG: its canvas (lines, axes, ticks) on the theme's background, or null
 * when nothing is drawn there.
 * @param {HTMLElement} el
 * @returns {Promise<Blob|null>}
 */
export function linePng(el) {
  const line = charts.get(el);
  if (!line) return Promise.resolve(null);
  const drawn = line.u.ctx.canvas;
  const image = document.createElement("canvas");
  image.width = drawn.width;
  image.height = drawn.height;
  const ctx = /** @type {CanvasRenderingContext2D} */ (image.getContext("2d"));
  ctx.fillStyle = theme().bg;
  ctx.fillRect(0, 0, image.width, image.height);
  ctx.drawImage(drawn, 0, 0);
  return new Promise((resolve) => image.toBlob(resolve, "image/png"));
}

/** Whether `el` holds a drawn line chart. @param {HTMLElement} el */
export function isLineChart(el) {
  return charts.has(el);
}

/** @param {HTMLElement} el @param {(step: number) => void} handler */
export function onLineClick(el, handler) {
  const line = charts.get(el);
  if (line) line.onClick = handler;
}

/** @param {HTMLElement} el @param {(range: [number, number]|null) => void} handler */
export function onLineZoom(el, handler) {
  const line = charts.get(el);
  if (line) line.onZoom = handler;
}

/** Show the whole run again in every line chart of `root` (their zoom handlers hear null). @param {ParentNode} root */
export function resetLineZoom(root) {
  for (const el of root.querySelectorAll(".line-chart")) {
    const line = charts.get(/** @type {HTMLElement} */ (el));
    if (line?.xs.length) line.u.setScale("x", { min: line.xs[0], max: line.xs[line.xs.length - 1] });
  }
}

/** @param {HTMLElement} el @param {LineChart} line */
function destroy(el, line) {
  line.resize.disconnect();
  line.u.destroy();
  charts.delete(el);
}

/** Free a line chart (its listeners on the window too). @param {HTMLElement} el */
export function purgeLine(el) {
  const line = charts.get(el);
  if (line) destroy(el, line);
  el.classList.remove("line-chart");
}
