import assert from "node:assert/strict";
import { test } from "node:test";

import {
  decodeArray, histogramBars, matrixAt, slice2d, thumbnailPixels, viridis,
} from "../../backend/finetune_studio/dashboard/tensordata.js";

/** @param {number[]} shape @param {number[]} values */
function wire(shape, values) {
  const bytes = Buffer.from(new Float32Array(values).buffer);
  return { dtype: /** @type {"float32"} */ ("float32"), shape, data: bytes.toString("base64") };
}

test("decodeArray reads little-endian float32 and keeps NaN", () => {
  const a = decodeArray(wire([2, 2], [1, 2.5, NaN, -Infinity]));
  assert.deepEqual(a.shape, [2, 2]);
  assert.equal(a.values[1], 2.5);
  assert.ok(Number.isNaN(a.values[2]));
  assert.throws(() => decodeArray({ ...wire([2, 2], [1, 2, 3, 4]), shape: [3] }), /shape/);
});

test("slice2d picks dims and index like tensors.slice2d", () => {
  // x[i, j, k] = 100 i + 10 j + k, shape [2, 3, 4]
  const values = [];
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) values.push(100 * i + 10 * j + k);
  const a = decodeArray(wire([2, 3, 4], values));
  assert.deepEqual(slice2d(a, [1, 2], [1]), [[100, 101, 102, 103], [110, 111, 112, 113], [120, 121, 122, 123]]);
  assert.deepEqual(slice2d(a, [2, 0], [2]), [[20, 120], [21, 121], [22, 122], [23, 123]]);
  assert.deepEqual(slice2d(decodeArray(wire([3], [1, NaN, 3])), [0, 0], []), [[1, null, 3]]);
});

test("matrixAt walks a stack of matrices", () => {
  const a = decodeArray(wire([2, 2, 1, 2], [0, 1, 2, 3, 4, 5, 6, 7]));
  assert.deepEqual(matrixAt(a, 3), [[6, 7]]);
});

test("histogramBars centres bars on the bins", () => {
  assert.deepEqual(histogramBars({ edges: [0, 1, 3], counts: [5, 2] }), { x: [0.5, 2], width: [1, 2], y: [5, 2] });
});

test("viridis ends and thumbnails scale to their maximum", () => {
  assert.deepEqual(viridis(0), [68, 1, 84]);
  assert.deepEqual(viridis(1), [253, 231, 37]);
  const px = thumbnailPixels([[0, 2], [null, 1]]);
  assert.deepEqual([...px.slice(4, 8)], [253, 231, 37, 255]);
  assert.deepEqual([...px.slice(8, 12)], [200, 200, 200, 255]);
});
