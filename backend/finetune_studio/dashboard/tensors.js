// @ts-check
/**
 * The tensor views: the list of captures (`#tensors`) and one capture (`#tensor=<id>`): its summary
 * table, histogram and either a heatmap of a chosen 2-D slice (dimension pickers) or, for attention, a
 * layer x head grid of thumbnails, a zoomed head with token labels on both axes, the layer's head
 * average and the rollout. main.js calls `mountTensors`; data comes from `/api/tensors` (docs/tensors.md).
 * Plots are drawn by charts.js; thumbnails are canvases (one plot per head would be heavy for 12 x 12
 * heads).
 */

import { drawHeatmap, drawHistogram, drawValues } from "./charts.js";
import { formatTime, formatValue } from "./format.js";
import { h, replace } from "./html.js";
import { decodeArray, histogramBars, matrixAt, slice2d, thumbnailPixels } from "./tensordata.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./tensordata.js").NdArray} NdArray */
/**
 * @typedef {{kind: string, shape: number[], dtype: string, device: string, numel: number, bytes: number,
 *   requires_grad: boolean, min: number|null, max: number|null, mean: number|null, std: number|null,
 *   nan: number|null, posinf: number|null, neginf: number|null, zeros: number|null,
 *   histogram: {edges: (number|null)[], counts: number[], sample_size: number, sampled: boolean}|null,
 *   note: string|null, text: string}} Summary
 * @typedef {{id: string, name: string, kind: "tensor"|"attention", created_at: number, bytes: number,
 *   summary: Summary}} TensorInfo
 * @typedef {TensorInfo & {view: Record<string, any>, arrays: Record<string, import("./tensordata.js").WireArray>}} TensorDetail
 */

/**
 * @param {HTMLElement} container
 * @param {{api: Api, tensorId: string|null}} options
 */
export async function mountTensors(container, { api, tensorId }) {
  const [listed, detail] = await Promise.all([
    ensureStyles(),
    api.request("GET", "/api/tensors"),
    tensorId ? api.request("GET", `/api/tensors/${encodeURIComponent(tensorId)}`) : Promise.resolve(null),
  ]).then(([, ...rest]) => rest);
  /** @type {TensorInfo[]} */
  const tensors = listed.tensors;
  const body = h("div.tensor-detail");
  replace(container, h("div.tensors", null, listPanel(tensors, tensorId, () => mountTensors(container, { api, tensorId })), body));
  if (detail) await renderDetail(body, /** @type {TensorDetail} */ (detail));
  else if (!tensors.length) replace(body, emptyHelp());
  else replace(body, h("div.empty", null, "Pick a capture on the left."));
}

/** @type {Promise<void>|null} */
let styles = null;

/** Add tensors.css once and wait for it: Plotly sizes a chart by its container when it draws. */
function ensureStyles() {
  styles ??= new Promise((resolve) => {
    const link = h("link", { id: "tensors-css", rel: "stylesheet", href: "/static/tensors.css" });
    link.addEventListener("load", () => resolve());
    link.addEventListener("error", () => resolve()); // unstyled beats blank
    document.head.appendChild(link);
  });
  return styles;
}

function emptyHelp() {
  return h("div.empty.big", null, h("h1", null, "No captured tensors yet"),
    h("p", null, "While paused in the debugger, right-click a tensor and choose Show in Fine-Tune Studio, or evaluate:"),
    h("pre", null, '__import__("finetune_studio.debug").debug.capture(x, name="x")'));
}

/**
 * @param {TensorInfo[]} tensors
 * @param {string|null} current
 * @param {() => void} refresh
 */
function listPanel(tensors, current, refresh) {
  return h("aside.tensor-list", { "aria-label": "Captured tensors" },
    h("div.tensor-list-head", null, h("strong", null, `Captures (${tensors.length})`), h("button", { onclick: refresh }, "Refresh")),
    h("ul", null, tensors.map((t) => h(`li${t.id === current ? ".active" : ""}`, { "data-tensor": t.id },
      h("a", { href: `#tensor=${encodeURIComponent(t.id)}` },
        h("div.tensor-name", null, t.name, t.kind === "attention" ? h("span.badge", null, "attention") : null),
        h("div.tensor-meta", null, `${t.summary.dtype} [${t.summary.shape.join(", ")}] · ${formatTime(t.created_at)}`))))));
}

/**
 * @param {HTMLElement} body
 * @param {TensorDetail} t
 */
async function renderDetail(body, t) {
  const hist = h("div.tensor-chart");
  const views = h("div");
  replace(body,
    h("div.tensor-head", null, h("h1", null, t.name), h("span.muted", null, formatTime(t.created_at))),
    h("pre.tensor-text", null, t.summary.text),
    h("div.tensor-top", null, summaryTable(t.summary), hist),
    views);
  await histogram(hist, t.summary);
  if (t.kind === "attention") renderAttention(views, t);
  else renderTensor(views, t);
}

/** @param {Summary} s */
function summaryTable(s) {
  /** @type {[string, string][]} */
  const rows = [
    ["shape", `[${s.shape.join(", ")}]`], ["dtype", s.dtype], ["device", s.device], ["elements", String(s.numel)],
    ["bytes", String(s.bytes)], ["min", formatValue(s.min)], ["max", formatValue(s.max)], ["mean", formatValue(s.mean)],
    ["std", formatValue(s.std)], ["NaN", count(s.nan)], ["+Inf", count(s.posinf)], ["-Inf", count(s.neginf)],
    ["zeros", count(s.zeros)],
  ];
  if (s.requires_grad) rows.push(["requires_grad", "yes"]);
  if (s.note) rows.push(["note", s.note]);
  return h("table.tensor-summary", null, h("tbody", null, rows.map(([k, v]) =>
    h("tr", { "data-key": k }, h("th", null, k), h(`td${(k === "NaN" || k.endsWith("Inf")) && v !== "0" && v !== "–" ? ".bad" : ""}`, null, v)))));
}

/** @param {number|null} n */
function count(n) {
  return n === null ? "–" : String(n);
}

/**
 * @param {HTMLElement} el
 * @param {Summary} s
 */
async function histogram(el, s) {
  if (!s.histogram) {
    replace(el, h("div.chart-empty", null, s.numel === 0 ? "empty tensor" : "no finite values to count"));
    return;
  }
  await drawHistogram(el, histogramBars(s.histogram),
    s.histogram.sampled ? `histogram (sample of ${s.histogram.sample_size})` : "histogram");
}

/**
 * @param {HTMLElement} root
 * @param {TensorDetail} t
 */
function renderTensor(root, t) {
  const view = t.view;
  if (!t.arrays.preview) {
    replace(root, h("div.empty", null, t.summary.nan === null ? "A meta tensor has no data to draw." : "Nothing to draw: the tensor is empty."));
    return;
  }
  const preview = decodeArray(t.arrays.preview);
  const slice = t.arrays.slice ? decodeArray(t.arrays.slice) : null;
  const nd = preview.shape.length;
  const chart = h("div.tensor-heatmap");
  const note = h("div.note");
  if (nd < 2) {
    replace(root, h("h2", null, nd === 0 ? "Value" : "Values"), note, chart);
    draw1d(chart, note, preview, view.pool ?? []);
    return;
  }
  const dims = /** @type {[number, number]} */ ([nd - 2, nd - 1]);
  /** @type {number[]} */
  let index = new Array(nd - 2).fill(0);
  const rowSelect = dimSelect(nd, dims[0]);
  const colSelect = dimSelect(nd, dims[1]);
  const indexBox = h("span.index-pickers");
  const redraw = () => {
    dims[0] = Number(rowSelect.value);
    dims[1] = Number(colSelect.value);
    if (dims[0] === dims[1]) {
      replace(note, "Pick two different dimensions.");
      return;
    }
    const isDefault = dims[0] === nd - 2 && dims[1] === nd - 1 && index.every((i) => i === 0);
    const pool = view.pool ?? [];
    const useSlice = slice && isDefault;
    const z = useSlice ? slice2d(slice, [0, 1], []) : slice2d(preview, dims, index);
    const factors = useSlice ? view.slice.pool : [pool[dims[0]] ?? 1, pool[dims[1]] ?? 1];
    const pooled = factors.some((/** @type {number} */ f) => f > 1);
    replace(note, pooled ? `Block means of ${factors.join(" x ")} elements (the capture was pooled to fit).` : "");
    const s = t.summary;
    drawHeatmap(chart, z, { title: `dims (${dims[0]}, ${dims[1]})`, diverging: (s.min ?? 0) < 0 && (s.max ?? 0) > 0 });
  };
  const pickers = () => {
    const others = preview.shape.map((_, d) => d).filter((d) => d !== dims[0] && d !== dims[1]);
    index = others.map(() => 0);
    replace(indexBox, others.map((d, i) => h("label", null, `dim ${d}`,
      h("input", { type: "number", min: 0, max: preview.shape[d] - 1, value: 0, "data-dim": d,
        oninput: (/** @type {Event} */ e) => { index[i] = Number(/** @type {HTMLInputElement} */ (e.target).value); redraw(); } }),
      h("span.muted", null, `of ${preview.shape[d]}`))));
  };
  const onDims = () => { dims[0] = Number(rowSelect.value); dims[1] = Number(colSelect.value); pickers(); redraw(); };
  rowSelect.addEventListener("change", onDims);
  colSelect.addEventListener("change", onDims);
  pickers();
  replace(root, h("h2", null, "Heatmap"),
    h("div.toolbar", null, h("label", null, "rows", rowSelect), h("label", null, "columns", colSelect), indexBox), note, chart);
  redraw();
}

/**
 * @param {number} nd
 * @param {number} selected
 */
function dimSelect(nd, selected) {
  const select = /** @type {HTMLSelectElement} */ (h("select", null,
    Array.from({ length: nd }, (_, d) => h("option", { value: d, selected: d === selected }, `dim ${d}`))));
  return select;
}

/**
 * @param {HTMLElement} chart
 * @param {HTMLElement} note
 * @param {NdArray} a
 * @param {number[]} pool
 */
function draw1d(chart, note, a, pool) {
  if (a.shape.length === 0) {
    replace(chart, h("div.tensor-scalar", null, formatValue(a.values[0])));
    return;
  }
  const f = pool[0] ?? 1;
  replace(note, f > 1 ? `Block means of ${f} elements.` : "");
  drawValues(chart, Array.from(a.values, (_, i) => i * f), slice2d(a, [0, 0], [])[0]);
}

/**
 * @param {HTMLElement} root
 * @param {TensorDetail} t
 */
function renderAttention(root, t) {
  const v = t.view;
  const heads = decodeArray(t.arrays.heads);
  const average = decodeArray(t.arrays.head_average);
  const rollout = t.arrays.rollout ? decodeArray(t.arrays.rollout) : null;
  const zoom = h("div.tensor-heatmap");
  const avg = h("div.tensor-heatmap");
  const roll = h("div.tensor-heatmap");
  const grid = h("table.att-grid", { "data-layers": v.layers, "data-heads": v.heads });
  const rows = [];
  /** @type {HTMLCanvasElement[]} */
  const cells = [];
  const headRow = h("tr", null, h("th"), Array.from({ length: v.heads }, (_, k) => h("th", null, `head ${k}`)));
  for (let l = 0; l < v.layers; l++) {
    const tds = [];
    for (let k = 0; k < v.heads; k++) {
      const canvas = thumbnail(matrixAt(heads, l * v.heads + k));
      canvas.className = "att-cell";
      canvas.dataset.layer = String(l);
      canvas.dataset.head = String(k);
      canvas.title = `layer ${l}, head ${k}`;
      canvas.addEventListener("click", () => select(l, k));
      cells.push(canvas);
      tds.push(h("td", null, canvas));
    }
    rows.push(h("tr", null, h("th", null, `layer ${l}`), tds));
  }
  replace(grid, h("thead", null, headRow), h("tbody", null, rows));
  /** @param {number} l @param {number} k */
  function select(l, k) {
    for (const c of cells) c.classList.toggle("selected", c.dataset.layer === String(l) && c.dataset.head === String(k));
    const labels = { rowLabels: v.query_labels, colLabels: v.key_labels, zmin: 0 };
    drawHeatmap(zoom, matrixAt(heads, l * v.heads + k), { ...labels, title: `layer ${l}, head ${k}` });
    drawHeatmap(avg, matrixAt(average, l), { ...labels, title: `layer ${l}, average of ${v.heads} heads` });
  }
  const pooled = v.group[0] > 1 || v.group[1] > 1;
  replace(root,
    h("h2", null, `Attention: ${v.layers} layers x ${v.heads} heads, ${v.q_len} x ${v.k_len} tokens`),
    h("div.note", null,
      v.batch > 1 ? `Batch element ${v.batch_index} of ${v.batch}. ` : "",
      pooled ? `Tokens grouped by ${v.group[0]} (query) and ${v.group[1]} (key): each cell is the attention from a group to a group. ` : "",
      "Thumbnails are scaled to their own maximum; click one to zoom.",
      v.note ? ` ${v.note}.` : ""),
    h("div.att-scroll", null, grid),
    h("div.att-views", null, zoom, avg, rollout ? roll : h("div.empty", null, "No rollout: queries and keys differ (cross-attention or a cached decoder step).")));
  select(0, 0);
  if (rollout) {
    drawHeatmap(roll, matrixAt(rollout, 0), { rowLabels: v.query_labels, colLabels: v.key_labels, zmin: 0,
      title: `rollout over ${v.layers} layers (Abnar & Zuidema)` });
  }
}

/**
 * @param {(number|null)[][]} matrix
 * @returns {HTMLCanvasElement}
 */
function thumbnail(matrix) {
  const canvas = /** @type {HTMLCanvasElement} */ (document.createElement("canvas"));
  canvas.height = matrix.length;
  canvas.width = matrix.length ? matrix[0].length : 0;
  const ctx = canvas.getContext("2d");
  if (ctx && canvas.width && canvas.height) {
    ctx.putImageData(new ImageData(thumbnailPixels(matrix), canvas.width, canvas.height), 0, 0);
  }
  return canvas;
}
