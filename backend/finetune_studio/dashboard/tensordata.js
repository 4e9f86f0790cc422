// @ts-check
/**
 * Pure data for the tensor views (no DOM, no Plotly; tested with `node --test`): decoding the base64
 * float32 arrays of `/api/tensors/{id}` (docs/tensors.md), 2-D slices of an N-D array, histogram bars
 * and colours for canvas thumbnails.
 */

/**
 * @typedef {{dtype: "float32", shape: number[], data: string}} WireArray
 * @typedef {{shape: number[], values: Float32Array}} NdArray
 */

/**
 * Base64 little-endian float32 to an array (NaN and ±Infinity survive).
 * @param {WireArray} wire
 * @returns {NdArray}
 */
export function decodeArray(wire) {
  const binary = atob(wire.data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  const view = new DataView(bytes.buffer);
  const values = new Float32Array(bytes.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true);
  const expected = wire.shape.reduce((a, b) => a * b, 1);
  if (values.length !== expected) throw new Error(`array of ${values.length} values for shape [${wire.shape}]`);
  return { shape: wire.shape, values };
}

/** @param {number[]} shape */
function strides(shape) {
  const out = new Array(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) out[d] = out[d + 1] * shape[d + 1];
  return out;
}

/**
 * The matrix over dims [rows, cols] with the other dimensions fixed at `index` (in their order), as
 * rows of numbers; non-finite values become null (Plotly draws a gap). A 1-D array is one row.
 * @param {NdArray} array
 * @param {[number, number]} dims
 * @param {number[]} index
 * @returns {(number|null)[][]}
 */
export function slice2d(array, dims, index) {
  const { shape, values } = array;
  if (shape.length === 0) return [[finiteOrNull(values[0])]];
  if (shape.length === 1) return [Array.from(values, finiteOrNull)];
  const [r, c] = dims;
  const st = strides(shape);
  const others = shape.map((_, d) => d).filter((d) => d !== r && d !== c);
  let base = 0;
  others.forEach((d, i) => { base += Math.min(Math.max(index[i] ?? 0, 0), shape[d] - 1) * st[d]; });
  /** @type {(number|null)[][]} */
  const out = [];
  for (let i = 0; i < shape[r]; i++) {
    const row = new Array(shape[c]);
    for (let j = 0; j < shape[c]; j++) row[j] = finiteOrNull(values[base + i * st[r] + j * st[c]]);
    out.push(row);
  }
  return out;
}

/**
 * Matrix `k` of a stack `[..., n, m]` flattened over its leading dimensions (e.g. layer*heads+head).
 * @param {NdArray} array
 * @param {number} k
 * @returns {(number|null)[][]}
 */
export function matrixAt(array, k) {
  const n = array.shape[array.shape.length - 2];
  const m = array.shape[array.shape.length - 1];
  const out = [];
  for (let i = 0; i < n; i++) {
    const start = k * n * m + i * m;
    out.push(Array.from(array.values.subarray(start, start + m), finiteOrNull));
  }
  return out;
}

/** @param {number} v */
export function finiteOrNull(v) {
  return Number.isFinite(v) ? v : null;
}

/**
 * Bars of a histogram: centres, widths and counts.
 * @param {{edges: (number|null)[], counts: number[]}} histogram
 */
export function histogramBars(histogram) {
  const e = histogram.edges.map((v) => Number(v));
  return {
    x: histogram.counts.map((_, i) => (e[i] + e[i + 1]) / 2),
    width: histogram.counts.map((_, i) => e[i + 1] - e[i]),
    y: histogram.counts,
  };
}

// viridis at 9 stops (matplotlib's colormap data)
const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
  [92, 200, 99], [170, 220, 50], [253, 231, 37]];

/**
 * The colour of t in [0, 1] on viridis, as [r, g, b].
 * @param {number} t
 * @returns {[number, number, number]}
 */
export function viridis(t) {
  const x = Math.min(Math.max(Number.isFinite(t) ? t : 0, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const a = VIRIDIS[i];
  const b = VIRIDIS[i + 1];
  /** @param {number} k */
  const mix = (k) => Math.round(a[k] + (b[k] - a[k]) * f);
  return [mix(0), mix(1), mix(2)];
}

/**
 * RGBA pixels of a matrix scaled to its own maximum (a thumbnail: shapes, not absolute values).
 * @param {(number|null)[][]} matrix
 * @returns {Uint8ClampedArray<ArrayBuffer>}
 */
export function thumbnailPixels(matrix) {
  const rows = matrix.length;
  const cols = rows ? matrix[0].length : 0;
  let max = 0;
  for (const row of matrix) for (const v of row) if (v !== null && v > max) max = v;
  const pixels = new Uint8ClampedArray(rows * cols * 4);
  matrix.forEach((row, i) => row.forEach((v, j) => {
    const [r, g, b] = v === null ? [200, 200, 200] : viridis(max > 0 ? v / max : 0);
    pixels.set([r, g, b, 255], (i * cols + j) * 4);
  }));
  return pixels;
}
