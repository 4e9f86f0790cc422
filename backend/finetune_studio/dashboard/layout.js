// @ts-check
/**
 * How a managed job is laid out, for its Config tab: the executor, the number of workers and where they
 * run, the batch per device and the global batch (batch × workers × gradient accumulation). Pure data
 * (no DOM), from the job's spec and, once it started, its device (mirrors `layout()` of
 * backend/finetune_studio/scheduler.py, which also logs the global batch as the job's first line).
 */

/** @typedef {import("./feed.js").Job} Job */
/**
 * @typedef {{executor: string, workers: number|null, where: string, batchSize: number,
 *   accumulation: number, globalBatch: number|null}} JobLayout
 *   workers and globalBatch are null while a job that asked for every GPU has not started.
 */

/**
 * How many processes (DDP ranks, or Ray Train workers) the job runs as.
 * @param {Record<string, any>} resources the spec's [resources]
 * @param {string|null} device the device the scheduler gave it ("cpu ×2 (gloo)", "cuda:0,cuda:1 (nccl)",
 *   "ray ×2 (CPU, a local Ray)"); null before it started
 * @returns {number|null}
 */
export function workerCount(resources, device) {
  const processes = processesOf(resources);
  if (processes > 1) return processes;
  const gpus = resources.gpus ?? 1;
  if (typeof gpus === "number") return Math.max(1, gpus);
  // gpus = "all": as many as the job got
  const ray = device?.match(/^ray ×(\d+)/);
  if (ray) return Number(ray[1]);
  if (device?.startsWith("cuda:")) return device.split(" ")[0].split(",").length;
  return device ? 1 : null;
}

/** @param {Record<string, any>} resources */
function processesOf(resources) {
  return resources.processes ?? 1;
}

/**
 * @param {Job} job a managed job (one with a spec)
 * @returns {JobLayout}
 */
export function jobLayout(job) {
  const spec = /** @type {Record<string, any>} */ (job.spec);
  const resources = spec.resources ?? {};
  const training = spec.training ?? {};
  const workers = workerCount(resources, job.device);
  const ray = resources.executor === "ray";
  const batchSize = training.batch_size ?? 16; // spec.py's default
  const accumulation = training.gradient_accumulation_steps ?? 1;
  // several local processes are `processes` CPU ranks (gloo) or one rank per GPU (nccl)
  const executor = ray ? "Ray Train (TorchTrainer)"
    : workers === 1 ? "local: one process" : `local: torchrun, DDP (${processesOf(resources) > 1 ? "gloo" : "nccl"})`;
  const where = ray
    ? job.device ?? `Ray at ${resources.ray_address ?? "RAY_ADDRESS, else a local Ray started for the job"}`
    : `this machine: ${job.device ?? "not started yet"}`;
  return { executor, workers, where, batchSize, accumulation,
    globalBatch: workers === null ? null : batchSize * workers * accumulation };
}
