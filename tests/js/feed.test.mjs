import assert from "node:assert/strict";
import { test } from "node:test";

import { FrameScheduler, JobFeed } from "../../backend/finetune_studio/dashboard/feed.js";

const job = () => ({
  id: "j1", name: "n", task: "text-classification", kind: "managed", state: "running", attempt: 1,
  created_at: 0, started_at: 0, finished_at: null,
  progress: { step: 0, max_steps: 100, epoch: 0, samples_per_second: null, eta_seconds: null },
  device: "cpu", output_dir: "/tmp", error: null, best_metric: null, spec: {},
});

/** @param {number} seq @param {number} step */
const metric = (seq, step, value = step) => ({ seq, type: "metric", time: step, data: { step, values: { "train/loss": value } } });

test("events at or below the last seq are skipped (a replay after reconnect)", () => {
  const feed = new JobFeed(job());
  assert.ok(feed.apply(metric(1, 10)));
  assert.ok(feed.apply(metric(2, 20)));
  assert.ok(!feed.apply(metric(2, 20)));
  assert.ok(!feed.apply(metric(1, 10)));
  assert.ok(feed.apply(metric(3, 30)));
  assert.deepEqual(feed.series.get("train/loss")?.data.step, [10, 20, 30]);
  assert.equal(feed.lastSeq, 3);
});

test("history merges under live points received while it loaded", () => {
  const feed = new JobFeed(job());
  feed.apply(metric(7, 30));
  feed.apply(metric(8, 40));
  feed.setHistory({ series: { "train/loss": { step: [10, 20, 30], value: [10, 20, 30], time: [1, 2, 3] } },
    total_points: { "train/loss": 3 } });
  assert.deepEqual(feed.series.get("train/loss")?.data.step, [10, 20, 30, 40]);
  const changes = feed.takeChanges();
  assert.ok(changes.series.has("train/loss"));
  assert.ok(!feed.takeChanges().any);
});

test("progress, state, eval and log events update the job view", () => {
  const feed = new JobFeed(job(), { logLines: 10 });
  feed.apply({ seq: 1, type: "progress", time: 0, data: { step: 5, max_steps: 100, epoch: 0.1, samples_per_second: 9, eta_seconds: 60 } });
  assert.equal(feed.job.progress.step, 5);
  feed.apply({ seq: 2, type: "system", time: 0, data: { values: { "system/cpu_percent": 50 } } });
  assert.deepEqual(feed.series.get("system/cpu_percent")?.data.step, [5]);
  feed.apply({ seq: 3, type: "eval", time: 0, data: { step: 5, values: { "eval/accuracy": 0.5 },
    confusion_matrix: [[1, 0], [0, 1]], labels: ["neg", "pos"] } });
  assert.deepEqual(feed.evaluation?.labels, ["neg", "pos"]);
  for (let i = 0; i < 30; i++) feed.apply({ seq: 10 + i, type: "log", time: i, data: { stream: "stdout", text: `line ${i}` } });
  assert.ok(feed.logs.length <= 13);
  assert.equal(feed.logs.at(-1)?.text, "line 29");
  feed.apply({ seq: 50, type: "state", time: 0, data: { ...job(), state: "completed" } });
  assert.equal(feed.job.state, "completed");
});

test("log history goes before live lines without repeating them", () => {
  const feed = new JobFeed(job());
  feed.apply({ seq: 5, type: "log", time: 5, data: { stream: "stdout", text: "five" } });
  feed.setLogHistory([1, 3, 5].map((seq) => ({ seq, time: seq, stream: "stdout", text: String(seq) })));
  assert.deepEqual(feed.logs.map((l) => l.seq), [1, 3, 5]);
  assert.equal(feed.logs[2].text, "five");
});

test("FrameScheduler draws once per frame however many requests come", async () => {
  /** @type {(() => void)[]} */
  const frames = [];
  let draws = 0;
  const s = new FrameScheduler(() => { draws++; }, (cb) => frames.push(cb));
  for (let i = 0; i < 100; i++) s.request();
  assert.equal(frames.length, 1);
  await frames.shift()?.();
  assert.equal(draws, 1);
  s.request();
  s.request();
  assert.equal(frames.length, 1);
});

test("FrameScheduler asks for another frame when requested during a slow draw", async () => {
  /** @type {(() => void)[]} */
  const frames = [];
  /** @type {() => void} */
  let finish = () => {};
  const s = new FrameScheduler(() => new Promise((r) => { finish = r; }), (cb) => frames.push(cb));
  s.request();
  const running = frames.shift()?.();
  s.request();
  assert.equal(frames.length, 0, "no frame while drawing");
  finish();
  await running;
  assert.equal(frames.length, 1);
});

test("a log line loaded by GET /logs is not added again when the stream replays it", () => {
  const feed = new JobFeed(job());
  feed.setLogHistory([1, 2, 3].map((seq) => ({ seq, time: seq, stream: "stdout", text: String(seq) })));
  for (const seq of [1, 2, 3, 4]) feed.apply({ seq, type: "log", time: seq, data: { stream: "stdout", text: String(seq) } });
  assert.deepEqual(feed.logs.map((l) => l.seq), [1, 2, 3, 4]);
});

test("the latest evaluation from the server does not replace a newer one from the stream", () => {
  const feed = new JobFeed(job());
  feed.apply({ seq: 1, type: "eval", time: 0, data: { step: 20, values: {}, labels: ["a"], confusion_matrix: [[1]] } });
  feed.setLatestEval({ step: 10, values: {}, samples: [{ input: "x", prediction: "a", reference: "a" }] });
  assert.equal(feed.evaluation?.step, 20);
  feed.setLatestEval({ step: 20, values: {}, samples: [{ input: "x", prediction: "a", reference: "a" }] });
  assert.equal(feed.evaluation?.samples?.length, 1);
  assert.deepEqual(feed.evaluation?.confusion_matrix, [[1]]);
});
