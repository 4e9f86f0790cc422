import assert from "node:assert/strict";
import { test } from "node:test";

import {
  appendPoint, aroundIndices, chartOrder, downsampleAround, downsampleMinMax, emaSmooth, emptySeries, lowerBound,
  mergeHistory, minMaxIndices, SeriesBuffer, smoothedByDefault, spliceRange, toCsv, xValues,
} from "../../backend/finetune_studio/dashboard/series.js";

/** @param {number[]} steps @param {(s: number) => number|null} [f] */
function series(steps, f = (s) => s * 10) {
  return { step: steps, value: steps.map(f), time: steps.map((s) => 1000 + s) };
}

test("emaSmooth with weight 0 returns the raw values", () => {
  assert.deepEqual(emaSmooth([1, 5, 2], 0), [1, 5, 2]);
});

test("emaSmooth is debiased: the first point is the raw value, not pulled to 0", () => {
  const out = emaSmooth([10, 20, 30], 0.6);
  assert.equal(out[0], 10);
  // TensorBoard: last = 0.6*last + 0.4*v; value = last / (1 - 0.6^n)
  const l1 = 0.4 * 10;
  const l2 = 0.6 * l1 + 0.4 * 20;
  const l3 = 0.6 * l2 + 0.4 * 30;
  assert.ok(Math.abs(out[1] - l2 / (1 - 0.36)) < 1e-12);
  assert.ok(Math.abs(out[2] - l3 / (1 - 0.216)) < 1e-12);
});

test("emaSmooth keeps a constant series constant", () => {
  for (const v of emaSmooth(new Array(500).fill(3.25), 0.99)) assert.ok(Math.abs(v - 3.25) < 1e-9);
});

test("emaSmooth keeps nulls as gaps and does not let them move the average", () => {
  const out = emaSmooth([1, null, 1, NaN, 1], 0.5);
  assert.deepEqual(out, [1, null, 1, null, 1]);
});

test("emaSmooth clamps a weight of 1 so the curve still moves", () => {
  const out = emaSmooth([0, 100], 1);
  assert.ok(out[1] > 0);
});

test("lowerBound finds the first step at or above", () => {
  assert.equal(lowerBound([1, 3, 5], 0), 0);
  assert.equal(lowerBound([1, 3, 5], 3), 1);
  assert.equal(lowerBound([1, 3, 5], 4), 2);
  assert.equal(lowerBound([1, 3, 5], 9), 3);
});

test("appendPoint appends, replaces the same step, and inserts an earlier step in order", () => {
  const s = emptySeries();
  assert.ok(appendPoint(s, 1, 1, 0));
  assert.ok(appendPoint(s, 2, 2, 0));
  assert.ok(!appendPoint(s, 2, 2.5, 0));
  assert.deepEqual(s.step, [1, 2]);
  assert.deepEqual(s.value, [1, 2.5]);
  appendPoint(s, 4, 4, 0);
  assert.ok(appendPoint(s, 3, 3, 0)); // attempt 2 re-logging from its checkpoint
  assert.deepEqual(s.step, [1, 2, 3, 4]);
  assert.deepEqual(s.value, [1, 2.5, 3, 4]);
});

test("replaying every event over a loaded history changes nothing (idempotent by step)", () => {
  const b = new SeriesBuffer(1000);
  b.setHistory(series([1, 2, 3, 4, 5]));
  for (const step of [1, 2, 3, 4, 5]) assert.ok(!b.add(step, step * 10, 1000 + step));
  assert.deepEqual(b.data, series([1, 2, 3, 4, 5]));
});

test("mergeHistory: live points after the history are appended, overlaps not duplicated", () => {
  const history = series([10, 20, 30, 40]);
  const live = series([30, 40, 50, 60], (s) => s * 10 + 1);
  const merged = mergeHistory(history, live);
  assert.deepEqual(merged.step, [10, 20, 30, 40, 50, 60]);
  assert.deepEqual(merged.value, [100, 200, 301, 401, 501, 601]);
});

test("mergeHistory does not re-insert points that the downsampled history left out", () => {
  const history = series([0, 50, 100]);
  const live = series([25, 100, 101]);
  const merged = mergeHistory(history, live);
  assert.deepEqual(merged.step, [0, 50, 100, 101]);
});

test("mergeHistory of empty sides", () => {
  assert.deepEqual(mergeHistory(emptySeries(), series([1, 2])).step, [1, 2]);
  assert.deepEqual(mergeHistory(series([1, 2]), emptySeries()).step, [1, 2]);
});

test("downsampleMinMax keeps first, last, and each bucket's extremes (spikes survive)", () => {
  const steps = Array.from({ length: 10000 }, (_, i) => i);
  const s = series(steps, (i) => (i === 4321 ? 1e6 : i === 777 ? -5 : 1));
  const d = downsampleMinMax(s, 200);
  assert.ok(d.step.length <= 204, `got ${d.step.length}`);
  assert.equal(d.step[0], 0);
  assert.equal(d.step.at(-1), 9999);
  assert.ok(d.step.includes(4321));
  assert.ok(d.step.includes(777));
  for (let i = 1; i < d.step.length; i++) assert.ok(d.step[i] > d.step[i - 1], "sorted and unique");
  // every kept point is a real point
  for (let i = 0; i < d.step.length; i++) assert.equal(d.value[i], s.value[d.step[i]]);
});

test("downsampleMinMax keeps a null (divergence) in a bucket", () => {
  const steps = Array.from({ length: 1000 }, (_, i) => i);
  const s = series(steps, (i) => (i === 500 ? null : i));
  const d = downsampleMinMax(s, 20);
  assert.ok(d.step.includes(500));
});

test("downsampleMinMax leaves small series alone", () => {
  const s = series([1, 2, 3]);
  assert.equal(downsampleMinMax(s, 10), s);
});

test("SeriesBuffer stays bounded over an hour of 10 Hz logging and keeps recent points exact", () => {
  const b = new SeriesBuffer(2000);
  for (let i = 1; i <= 36000; i++) b.add(i, Math.sin(i / 100), i / 10);
  assert.ok(b.length <= 2000, `kept ${b.length}`);
  assert.equal(b.lastStep, 36000);
  const d = b.data;
  for (let i = 1; i < d.step.length; i++) assert.ok(d.step[i] > d.step[i - 1]);
  // the newest 500 points (a quarter of the cap) are all there
  const tail = d.step.slice(-500);
  assert.deepEqual(tail, Array.from({ length: 500 }, (_, i) => 35501 + i));
  assert.equal(d.step[0], 1);
});

test("SeriesBuffer.setHistory merges under live points that came first", () => {
  const b = new SeriesBuffer(100);
  b.add(5, 50, 0);
  b.add(6, 60, 0);
  b.setHistory(series([1, 2, 3, 4, 5]));
  assert.deepEqual(b.data.step, [1, 2, 3, 4, 5, 6]);
  assert.equal(b.data.value[4], 50);
});

test("SeriesBuffer of a million-point history is compacted to its cap", () => {
  const steps = Array.from({ length: 1_000_000 }, (_, i) => i);
  const b = new SeriesBuffer(20000);
  b.setHistory(series(steps));
  assert.ok(b.length <= 20000);
  assert.equal(b.lastStep, 999_999);
});

test("xValues by step, relative time and wall time", () => {
  const s = series([1, 2]);
  assert.deepEqual(xValues(s, "step", 0), [1, 2]);
  assert.deepEqual(xValues(s, "relative", 1000), [1, 2]);
  const wall = xValues(s, "wall", 0);
  assert.ok(wall[0] instanceof Date);
  assert.equal(/** @type {Date} */ (wall[0]).getTime(), 1001000);
});

test("toCsv writes one row per point, empty for null", () => {
  const csv = toCsv({ "train/loss": { step: [1, 2], value: [0.5, null], time: [10, 11] } });
  assert.equal(csv, "name,step,value,time\ntrain/loss,1,0.5,10\ntrain/loss,2,,11\n");
});

test("chartOrder puts train loss first and drops the epoch counter", () => {
  const order = chartOrder(["system/gpu_memory", "train/epoch", "train/learning_rate", "eval/accuracy",
    "eval/runtime", "train/loss", "eval/loss", "train/grad_norm"]);
  assert.deepEqual(order, ["train/loss", "eval/loss", "eval/accuracy", "train/learning_rate",
    "train/grad_norm", "system/gpu_memory", "eval/runtime"]);
});

test("a replay over a downsampled history keeps its shape and updates the steps it holds", () => {
  const b = new SeriesBuffer(1000);
  b.setHistory(series([0, 50, 100]));
  for (let step = 0; step <= 120; step++) b.add(step, -step, 0);
  assert.deepEqual(b.data.step, [0, 50, 100, ...Array.from({ length: 20 }, (_, i) => 101 + i)]);
  assert.equal(b.data.value[1], -50);
});

test("only noisy series are smoothed by default: losses and gradient norms, not schedules or counters", () => {
  for (const name of ["train/loss", "train/grad_norm", "train/aux_loss", "loss"]) assert.ok(smoothedByDefault(name), name);
  for (const name of ["train/learning_rate", "train/epoch", "eval/loss", "eval/accuracy", "train/train_runtime",
    "train/train_samples_per_second", "system/gpu0_utilization", "train/num_input_tokens_seen"]) {
    assert.ok(!smoothedByDefault(name), name);
  }
});

/** @param {number[]} steps @param {number} [scale] */
const seriesOf = (steps, scale = 1) => ({ step: steps, value: steps.map((s) => s * scale), time: steps.map((s) => 1000 + s) });

test("a zoomed range takes the server's exact points and keeps the page's elsewhere and after them", () => {
  const kept = seriesOf([0, 10, 20, 30, 40, 50, 60]); // bucketed history
  const fetched = seriesOf([19, 20, 21, 22, 23, 24, 25], 2); // the server's raw points of 18..32
  const out = spliceRange(kept, fetched, 18, 32);
  assert.deepEqual(out.step, [0, 10, 19, 20, 21, 22, 23, 24, 25, 30, 40, 50, 60]);
  assert.deepEqual(out.value.slice(2, 9), [38, 40, 42, 44, 46, 48, 50]);
  assert.equal(out.value[9], 30); // 30 arrived live after the fetch: the page's point stays
  assert.deepEqual(out.time, out.step.map((s) => 1000 + s));
  // nothing fetched (yet): the page's points stay
  assert.deepEqual(spliceRange(kept, seriesOf([]), 15, 45).step, [0, 10, 20, 30, 40, 50, 60]);
});

test("a zoomed chart spends its point budget on the visible range", () => {
  const steps = Array.from({ length: 10000 }, (_, i) => i);
  const out = downsampleAround(seriesOf(steps), 5000, 5099, 400);
  const visible = out.step.filter((s) => s >= 5000 && s <= 5099);
  assert.deepEqual(visible, steps.slice(5000, 5100)); // exact: 100 points fit in 400
  assert.ok(out.step.length < 400 + 100 + 10, `${out.step.length} points`);
  assert.equal(out.step[0], 0);
  assert.equal(out.step.at(-1), 9999);
});

test("the kept indices are ascending and pick what the downsampled series holds (charts thin the smoothed line there)", () => {
  const s = series(Array.from({ length: 5000 }, (_, i) => i), (x) => Math.sin(x / 10) + (x === 3333 ? 9 : 0));
  for (const [indices, expected] of [
    [minMaxIndices(s, 300), downsampleMinMax(s, 300)], [aroundIndices(s, 2000, 2100, 300), downsampleAround(s, 2000, 2100, 300)],
  ]) {
    assert.ok(indices.every((i, k) => k === 0 || i > indices[k - 1]));
    assert.deepEqual(indices.map((i) => s.step[i]), expected.step);
  }
  assert.ok(minMaxIndices(s, 300).includes(3333)); // the spike
  assert.deepEqual(minMaxIndices(series([1, 2]), 300), [0, 1]);
});

test("a buffer counts rewrites, so a chart appends only what was appended", () => {
  const b = new SeriesBuffer(100);
  b.add(1, 1, 1);
  b.add(2, 2, 2);
  assert.equal(b.rewrites, 0);
  b.add(2, 3, 3); // a replayed step replaces its value
  assert.equal(b.rewrites, 1);
  b.add(3, 3, 3);
  assert.equal(b.rewrites, 1);
  b.setHistory({ step: [0], value: [0], time: [0] });
  assert.equal(b.rewrites, 2);
  for (let s = 4; s <= 101; s++) b.add(s, s, s); // past the cap: older points bucketed
  assert.equal(b.rewrites, 3);
});
