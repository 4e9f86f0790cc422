import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AnomalyLog, MAX_MARKERS, anomalyFromEvent, anomalyMarkers, describe, nearestFinite, rowsText,
} from "../../backend/finetune_studio/dashboard/anomalies.js";
import { JobFeed } from "../../backend/finetune_studio/dashboard/feed.js";
import { formatRoute, parseRoute } from "../../backend/finetune_studio/dashboard/route.js";

/** An `anomaly` stream event as backend/finetune_studio/anomaly.py `Anomaly.to_event()` sends it. */
const event = (seq, step, data = {}) => ({
  seq, type: "anomaly", time: 1000 + seq,
  data: { kind: "spike", step, value: 9.5, threshold: 8, detail: "loss z-score 9.5 over the last 50", rows: [3, 17],
    saved_to: `/runs/j1/anomalies/step-${step}-spike.pt`, ...data },
});

const job = () => ({
  id: "j1", name: "n", task: "text-classification", kind: "attached", state: "running", attempt: 1,
  created_at: 0, started_at: 0, finished_at: null,
  progress: { step: 0, max_steps: 100, epoch: 0, samples_per_second: null, eta_seconds: null },
  device: "cpu", output_dir: "/tmp", error: null, best_metric: null, spec: null, training_args: null,
});

test("an anomaly event becomes a record; other events and junk do not", () => {
  assert.deepEqual(anomalyFromEvent(event(4, 12)), {
    seq: 4, time: 1004, kind: "spike", step: 12, value: 9.5, threshold: 8, detail: "loss z-score 9.5 over the last 50",
    rows: [3, 17], saved_to: "/runs/j1/anomalies/step-12-spike.pt",
  });
  const nan = anomalyFromEvent(event(5, 13, { kind: "nan", value: null, threshold: null, saved_to: null, rows: [1, "x", 2.5] }));
  assert.equal(nan?.value, null);
  assert.equal(nan?.saved_to, null);
  assert.deepEqual(nan?.rows, [1]);
  assert.equal(anomalyFromEvent({ seq: 1, type: "metric", time: 0, data: { step: 1, values: {} } }), null);
  assert.equal(anomalyFromEvent({ seq: 1, type: "anomaly", time: 0, data: { kind: "nan" } }), null);
  assert.equal(anomalyFromEvent(event(6, 1, { rows: undefined })).rows.length, 0);
});

test("the log keeps each anomaly once, in step order, and finds the last at a step", () => {
  const log = new AnomalyLog();
  assert.ok(log.add(event(9, 30)));
  assert.ok(log.add(event(3, 10)));
  assert.equal(log.add(event(3, 10)), null); // the history and the stream both had it
  assert.ok(log.add(event(10, 30, { kind: "grad_spike" })));
  assert.deepEqual(log.items.map((a) => [a.step, a.seq]), [[10, 3], [30, 9], [30, 10]]);
  assert.equal(log.at(30)?.kind, "grad_spike");
  assert.equal(log.at(11), null);
});

test("markers sit on the loss at their step, or the nearest finite loss when it is NaN", () => {
  const loss = { step: [1, 2, 3, 4, 6], value: [1.0, 0.9, null, 5.0, 0.7], time: [1, 2, 3, 4, 6] };
  assert.equal(nearestFinite(loss, 4), 5.0);
  assert.equal(nearestFinite(loss, 3), 0.9); // a tie: the earlier
  assert.equal(nearestFinite(loss, 5), 5.0);
  assert.equal(nearestFinite(loss, 100), 0.7);
  assert.equal(nearestFinite(loss, 0), 1.0);
  assert.equal(nearestFinite({ step: [1], value: [null], time: [1] }, 1), null);
  const log = new AnomalyLog();
  log.add(event(1, 4));
  log.add(event(2, 3, { kind: "nan", value: null }));
  const m = anomalyMarkers(log.items, loss);
  assert.deepEqual(m.step, [3, 4]);
  assert.deepEqual(m.value, [0.9, 5.0]);
  assert.deepEqual(m.kind, ["nan", "spike"]);
  assert.deepEqual(m.time, [1002, 1001]);
  // no loss drawn: the anomaly's own value, else 0
  assert.deepEqual(anomalyMarkers(log.items, { step: [], value: [], time: [] }).value, [0, 9.5]);
});

test("markers are capped to the newest", () => {
  const log = new AnomalyLog();
  for (let i = 1; i <= MAX_MARKERS + 5; i++) log.add(event(i, i));
  const m = anomalyMarkers(log.items, { step: [], value: [], time: [] });
  assert.equal(m.step.length, MAX_MARKERS);
  assert.equal(m.step[0], 6);
});

test("an anomaly reads as one line", () => {
  assert.equal(describe(/** @type {any} */ (anomalyFromEvent(event(1, 12)))),
    "Loss spike at step 12 (value 9.5, threshold 8): loss z-score 9.5 over the last 50");
  assert.equal(describe(/** @type {any} */ (anomalyFromEvent(event(1, 7, { kind: "nan", value: null, threshold: null, detail: "" })))),
    "Non-finite value at step 7 (value NaN or ±inf)");
  assert.equal(rowsText([]), "none reported");
  assert.equal(rowsText([1, 2, 3], 2), "1, 2, … (3 rows)");
});

test("the feed takes anomalies from its history and its stream; only the stream's are live", () => {
  const feed = new JobFeed(job());
  feed.setAnomalyHistory([event(2, 5), event(3, 6)]);
  let changes = feed.takeChanges();
  assert.ok(changes.anomalies && changes.any);
  assert.deepEqual(changes.liveAnomalies, []);
  assert.ok(feed.apply(event(7, 9)));
  assert.ok(!feed.apply(event(7, 9)));
  changes = feed.takeChanges();
  assert.deepEqual(changes.liveAnomalies.map((a) => a.step), [9]);
  // the stream replays one the history had (it loaded while the stream started): no second notice
  assert.ok(feed.apply(event(8, 10)));
  feed.setAnomalyHistory([event(2, 5), event(8, 10)]);
  assert.deepEqual(feed.anomalies.items.map((a) => a.step), [5, 6, 9, 10]);
  assert.equal(feed.takeChanges().liveAnomalies.length, 1);
});

test("#job=<id>&step=<step> names the job and the batch to show", () => {
  assert.deepEqual(parseRoute("#job=abc&step=120"), { view: "job", id: "abc", tab: "charts", step: 120 });
  assert.deepEqual(parseRoute("#job=a%20b&tab=logs&step=0"), { view: "job", id: "a b", tab: "logs", step: 0 });
  assert.deepEqual(parseRoute("#job=abc&step=-1"), { view: "job", id: "abc", tab: "charts" });
  assert.deepEqual(parseRoute("#job=abc&step=x"), { view: "job", id: "abc", tab: "charts" });
  for (const hash of ["#job=abc&step=120", "#job=abc&tab=logs&step=3"]) assert.equal(formatRoute(parseRoute(hash)), hash);
  // what the plugin writes (DashboardRoute.batch in plugin/.../core/DashboardRoute.kt)
  assert.deepEqual(parseRoute("job=run%2F1&step=7"), { view: "job", id: "run/1", tab: "charts", step: 7 });
});
