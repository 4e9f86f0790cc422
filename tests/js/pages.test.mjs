import assert from "node:assert/strict";
import { test } from "node:test";

import { formatDuration, formatValue, headlineMetric, jobDuration, jobFraction, seriesTitle } from "../../backend/finetune_studio/dashboard/format.js";
import { formatRoute, parseRoute } from "../../backend/finetune_studio/dashboard/route.js";
import { diffSpecs, flatten, jobSettings, toToml } from "../../backend/finetune_studio/dashboard/specs.js";

test("routes round-trip through the hash", () => {
  assert.deepEqual(parseRoute("#job=abc"), { view: "job", id: "abc", tab: "charts" });
  assert.deepEqual(parseRoute("#job=abc&tab=logs"), { view: "job", id: "abc", tab: "logs" });
  assert.deepEqual(parseRoute("#job=abc&tab=bogus"), { view: "job", id: "abc", tab: "charts" });
  assert.deepEqual(parseRoute("#compare=a,b,a"), { view: "compare", ids: ["a", "b"] });
  assert.deepEqual(parseRoute("#new"), { view: "new", clone: null });
  assert.deepEqual(parseRoute("#new=x"), { view: "new", clone: "x" });
  assert.deepEqual(parseRoute("#tensor=t1"), { view: "tensors", id: "t1" });
  assert.deepEqual(parseRoute("#tensors"), { view: "tensors", id: null });
  assert.deepEqual(parseRoute(""), { view: "home" });
  for (const hash of ["#job=abc", "#job=abc&tab=logs", "#compare=a,b", "#new", "#new=x", "#tensor=t1", "#tensors"]) {
    assert.equal(formatRoute(parseRoute(hash)), hash);
  }
});

test("values and durations read well", () => {
  assert.equal(formatValue(0.123456), "0.1235");
  assert.equal(formatValue(2e-5), "2.000e-5");
  assert.equal(formatValue(null), "–");
  assert.equal(formatValue(42), "42");
  assert.equal(formatDuration(42), "42s");
  assert.equal(formatDuration(185), "3m 05s");
  assert.equal(formatDuration(3720), "1h 02m");
  assert.equal(formatDuration(null), "–");
});

test("the headline metric prefers accuracy, then F1, then loss", () => {
  assert.deepEqual(headlineMetric({ "eval/loss": 0.3, "eval/accuracy": 0.9 }), ["eval/accuracy", 0.9]);
  assert.deepEqual(headlineMetric({ "eval/loss": 0.3 }), ["eval/loss", 0.3]);
  assert.equal(headlineMetric(null), null);
  assert.equal(seriesTitle("eval/grad_norm"), "grad norm (eval)");
});

test("a spec renders as finetune.toml", () => {
  const toml = toToml({ name: "x", task: "text-classification", model: "/m", lora: null,
    data: { train: "/d/train.csv", eval: null }, training: { epochs: 3, learning_rate: 2e-5, args: {} },
    resources: { gpus: "all" } });
  assert.equal(toml, [
    'name = "x"', 'task = "text-classification"', 'model = "/m"', "",
    "[data]", 'train = "/d/train.csv"', "",
    "[training]", "epochs = 3", "learning_rate = 0.00002", "args = {}", "",
    "[resources]", 'gpus = "all"', "",
  ].join("\n"));
});

test("spec diff lists only the keys that differ", () => {
  const a = { training: { epochs: 3, learning_rate: 2e-5 }, model: "m" };
  const b = { training: { epochs: 3, learning_rate: 1e-4 }, model: "m", lora: { r: 8 } };
  assert.deepEqual(flatten(a), { "training.epochs": 3, "training.learning_rate": 2e-5, model: "m" });
  assert.deepEqual(diffSpecs([a, b]), [
    { key: "lora.r", values: [undefined, 8] },
    { key: "training.learning_rate", values: [2e-5, 1e-4] },
  ]);
});

test("log text loses colour codes and keeps a progress bar's last state", async () => {
  const { cleanLogText } = await import("../../backend/finetune_studio/dashboard/format.js");
  assert.equal(cleanLogText("[transformers] \u001b[1mLOAD REPORT\u001b[0m"), "[transformers] LOAD REPORT");
  assert.equal(cleanLogText("\rtok:   0%|\rtok: 100%|"), "tok: 100%|");
  assert.equal(cleanLogText(""), "");
});

test("a job's progress and duration, one rule for the list and the job page", () => {
  const progress = { step: 30, max_steps: 120 };
  assert.equal(jobFraction({ state: "running", progress }), 0.25);
  assert.equal(jobFraction({ state: "completed", progress }), 1); // stopped early, still done
  assert.equal(jobFraction({ state: "queued", progress: { step: 0, max_steps: 0 } }), 0);
  assert.equal(jobDuration({ started_at: 100, finished_at: 160 }), 60);
  assert.equal(jobDuration({ started_at: 100, finished_at: null }, 130), 30);
  assert.equal(jobDuration({ started_at: null, finished_at: null }), null);
});

test("an attached run has no spec: its TrainingArguments stand in for diffing", () => {
  const managed = { spec: { training: { learning_rate: 1e-3 } }, training_args: null };
  const attached = { spec: null, training_args: { learning_rate: 5e-5 } };
  assert.deepEqual(jobSettings(attached), { training_args: { learning_rate: 5e-5 } });
  assert.deepEqual(jobSettings({ spec: null, training_args: null }), { training_args: {} });
  assert.deepEqual(diffSpecs([managed, attached].map(jobSettings)).map((r) => r.key),
    ["training.learning_rate", "training_args.learning_rate"]);
});
