import assert from "node:assert/strict";
import { test } from "node:test";

import { jobLayout, workerCount } from "../../backend/finetune_studio/dashboard/layout.js";

/** @param {Record<string, any>} spec @param {string|null} device */
function job(spec, device = null) {
  return /** @type {any} */ ({ spec, device });
}

test("one process: the global batch is the batch times the accumulation", () => {
  const layout = jobLayout(job({ training: { batch_size: 8, gradient_accumulation_steps: 4 } }, "cpu"));
  assert.equal(layout.executor, "local: one process");
  assert.equal(layout.workers, 1);
  assert.equal(layout.globalBatch, 32);
  assert.equal(layout.where, "this machine: cpu");
});

test("CPU processes under torchrun: batch × processes × accumulation", () => {
  const layout = jobLayout(job({ training: { batch_size: 8, gradient_accumulation_steps: 2 },
    resources: { processes: 2, gpus: 1 } }, "cpu ×2 (gloo)"));
  assert.equal(layout.executor, "local: torchrun, DDP (gloo)");
  assert.deepEqual([layout.workers, layout.batchSize, layout.accumulation, layout.globalBatch], [2, 8, 2, 32]);
});

test("GPUs: one rank per GPU (nccl); 'all' is known once the job has its GPUs", () => {
  const two = jobLayout(job({ training: { batch_size: 4 }, resources: { gpus: 2 } }, "cuda:0,cuda:1 (nccl)"));
  assert.equal(two.executor, "local: torchrun, DDP (nccl)");
  assert.equal(two.globalBatch, 8);
  assert.equal(workerCount({ gpus: "all" }, null), null);
  assert.equal(workerCount({ gpus: "all" }, "cuda:0,cuda:1,cuda:2 (nccl)"), 3);
  assert.equal(jobLayout(job({ resources: { gpus: "all" } })).globalBatch, null);
  assert.equal(workerCount({ gpus: 0 }, "cpu"), 1);
});

test("Ray: the workers and where they run, from the device once started", () => {
  const queued = jobLayout(job({ training: { batch_size: 8 }, resources: { executor: "ray", processes: 2 } }));
  assert.equal(queued.executor, "Ray Train (TorchTrainer)");
  assert.equal(queued.where, "Ray at RAY_ADDRESS, else a local Ray started for the job");
  assert.equal(queued.globalBatch, 16); // the spec's default accumulation (1)
  const started = jobLayout(job({ resources: { executor: "ray", gpus: "all" } }, "ray ×4 (GPU, 10.0.0.1:6379)"));
  assert.equal(started.workers, 4);
  assert.equal(started.where, "ray ×4 (GPU, 10.0.0.1:6379)");
  assert.equal(started.globalBatch, 64); // the spec's default batch (16)
});
