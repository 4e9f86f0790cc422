// @ts-check
/**
 * What the page knows about one job, fed by its SSE stream and its history. Pure data (no DOM).
 *
 * Lifecycle: open the stream first, then load the history; live events that arrive meanwhile go into
 * the buffers at once and `setHistory` merges the history under them by step. Every event carries its
 * store sequence number: one at or below `lastSeq` was already applied (a reconnect that replays) and
 * is skipped, so a dropped and resumed stream never duplicates a point, and resuming `after=lastSeq`
 * never leaves a gap.
 */

import { AnomalyLog } from "./anomalies.js";
import { cleanLogText } from "./format.js";
import { SeriesBuffer } from "./series.js";

/** @typedef {import("./series.js").SeriesData} SeriesData */
/**
 * Mirrors backend/finetune_studio/wire/.
 * @typedef {{step: number, max_steps: number, epoch: number, samples_per_second: number|null,
 *   eta_seconds: number|null}} Progress
 * @typedef {{type: string, message: string, hint: string|null}} JobError
 * @typedef {{id: string, name: string, task: string, kind: "managed"|"attached", state: string,
 *   attempt: number, created_at: number, started_at: number|null, finished_at: number|null,
 *   progress: Progress, device: string|null, output_dir: string, error: JobError|null,
 *   best_metric: Record<string, number>|null, spec: Record<string, any>|null,
 *   training_args: Record<string, string|number|boolean|null>|null}} Job
 *   spec: the JobSpec of a managed job, null for an attached run, which carries the TrainingArguments
 *   its script ran with (`training_args`) instead.
 * @typedef {{seq: number, time: number, stream: "stdout"|"stderr", text: string}} LogLine
 * @typedef {{seq: number, type: string, time: number, data: any}} StreamEvent
 * @typedef {{step: number, values: Record<string, number|null>, confusion_matrix?: number[][],
 *   labels?: string[], per_class?: Record<string, {precision: number, recall: number, f1: number,
 *   support: number}>, samples?: {input: string, prediction: string, reference: string}[]}} EvalData
 */

export const FINISHED_STATES = new Set(["completed", "failed", "cancelled", "interrupted"]);
export const RESUMABLE_STATES = new Set(["failed", "cancelled", "interrupted"]);

/** What changed when events were applied, so a view redraws only that. */
export class Changes {
  constructor() {
    /** @type {Set<string>} */
    this.series = new Set();
    this.job = false;
    this.logs = false;
    this.evaluation = false;
    /** the list of anomalies changed (history or stream) */
    this.anomalies = false;
    /** @type {import("./anomalies.js").Anomaly[]} anomalies that arrived on the stream: worth a notice */
    this.liveAnomalies = [];
  }

  get any() {
    return this.series.size > 0 || this.job || this.logs || this.evaluation || this.anomalies;
  }
}

export class JobFeed {
  /**
   * @param {Job} job
   * @param {{pointsPerSeries?: number, logLines?: number}} [limits]
   */
  constructor(job, limits = {}) {
    this.job = job;
    this.pointsPerSeries = limits.pointsPerSeries ?? 20000;
    this.logLimit = limits.logLines ?? 5000;
    /** @type {Map<string, SeriesBuffer>} */
    this.series = new Map();
    /** Highest stream seq applied; the stream resumes after it. */
    this.lastSeq = 0;
    /** @type {LogLine[]} */
    this.logs = [];
    /** Log lines dropped from the front to stay within logLimit. */
    this.logsDropped = 0;
    /** @type {EvalData|null} the latest evaluation that carried details (matrix, per class, samples) */
    this.evaluation = null;
    this.anomalies = new AnomalyLog();
    /** Points stored per series on the server (from /metrics), to say "n points, m shown". */
    /** @type {Record<string, number>} */
    this.totalPoints = {};
    this.changes = new Changes();
  }

  /** @param {string} name */
  buffer(name) {
    let b = this.series.get(name);
    if (!b) {
      b = new SeriesBuffer(this.pointsPerSeries);
      this.series.set(name, b);
    }
    return b;
  }

  /**
   * History from `GET /api/jobs/{id}/metrics`.
   * @param {{series: Record<string, SeriesData>, total_points?: Record<string, number>}} metrics
   */
  setHistory(metrics) {
    for (const [name, s] of Object.entries(metrics.series)) {
      this.buffer(name).setHistory(s);
      this.changes.series.add(name);
    }
    Object.assign(this.totalPoints, metrics.total_points ?? {});
  }

  /**
   * Log lines from `GET /api/jobs/{id}/logs`, older than what the stream delivers.
   * @param {LogLine[]} lines
   */
  setLogHistory(lines) {
    const firstLive = this.logs.length ? this.logs[0].seq : Infinity;
    const older = lines.filter((l) => l.seq < firstLive).map((l) => ({ ...l, text: cleanLogText(l.text) }));
    this.logs = older.concat(this.logs);
    this.trimLogs();
    this.changes.logs = true;
  }

  /**
   * The latest evaluation as the server has it, unless the stream brought a newer one meanwhile.
   * @param {EvalData} evaluation
   */
  setLatestEval(evaluation) {
    if (!this.evaluation || this.evaluation.step <= evaluation.step) this.evaluation = { ...this.evaluation, ...evaluation };
    this.changes.evaluation = true;
  }

  /**
   * Anomalies from before the stream (`GET /api/jobs/{id}/events?types=anomaly`); those the stream
   * delivered already are kept once.
   * @param {StreamEvent[]} events
   */
  setAnomalyHistory(events) {
    for (const event of events) if (this.anomalies.add(event)) this.changes.anomalies = true;
  }

  /**
   * Apply one stream event; returns false when it was already applied.
   * @param {StreamEvent} event
   */
  apply(event) {
    if (event.seq <= this.lastSeq) return false;
    this.lastSeq = event.seq;
    const data = event.data ?? {};
    switch (event.type) {
      case "metric":
      case "eval":
      case "system": {
        const step = Number.isFinite(data.step) ? data.step : this.job.progress?.step ?? 0;
        for (const [name, value] of Object.entries(data.values ?? {})) {
          if (value !== null && typeof value !== "number") continue;
          const added = this.buffer(name).add(step, value, event.time);
          this.changes.series.add(name);
          if (added && this.totalPoints[name] !== undefined) this.totalPoints[name]++;
        }
        if (event.type === "eval" && (data.confusion_matrix || data.per_class || data.samples)) {
          this.evaluation = { ...data, step };
          this.changes.evaluation = true;
        }
        break;
      }
      case "progress":
        this.job = { ...this.job, progress: data };
        this.changes.job = true;
        break;
      case "state":
        this.job = data;
        this.changes.job = true;
        break;
      case "log":
        // the line may already be here from GET /logs, loaded while the stream replayed
        if (this.logs.length && event.seq <= this.logs[this.logs.length - 1].seq) break;
        this.logs.push({ seq: event.seq, time: data.time ?? event.time, stream: data.stream, text: cleanLogText(String(data.text ?? "")) });
        if (this.logs.length > this.logLimit * 1.25) this.trimLogs();
        this.changes.logs = true;
        break;
      case "anomaly": {
        const anomaly = this.anomalies.add(event);
        if (anomaly) {
          this.changes.anomalies = true;
          this.changes.liveAnomalies.push(anomaly);
        }
        break;
      }
      default:
        break;
    }
    return true;
  }

  trimLogs() {
    const extra = this.logs.length - this.logLimit;
    if (extra > 0) {
      this.logs.splice(0, extra);
      this.logsDropped += extra;
    }
  }

  /** The changes since the last call, and a fresh record for the next ones. */
  takeChanges() {
    const c = this.changes;
    this.changes = new Changes();
    return c;
  }

  /** @returns {Record<string, SeriesData>} */
  seriesData() {
    /** @type {Record<string, SeriesData>} */
    const out = {};
    for (const [name, b] of this.series) out[name] = b.data;
    return out;
  }
}

/**
 * Runs `draw` at most once per animation frame however many events arrive: events are applied to the
 * data as they come (cheap, bounded), and only the drawing waits for the frame. While a frame is not
 * granted (a hidden tab or tool window) nothing queues up but a flag.
 */
export class FrameScheduler {
  /**
   * @param {() => void | Promise<void>} draw
   * @param {(cb: () => void) => any} [requestFrame]
   */
  constructor(draw, requestFrame = (cb) => requestAnimationFrame(cb)) {
    this.draw = draw;
    this.requestFrame = requestFrame;
    this.pending = false;
    this.drawing = false;
    this.again = false;
    this.frames = 0;
  }

  request() {
    if (this.drawing) {
      this.again = true;
      return;
    }
    if (this.pending) return;
    this.pending = true;
    this.requestFrame(() => this.run());
  }

  async run() {
    this.pending = false;
    this.drawing = true;
    this.frames++;
    try {
      await this.draw();
    } finally {
      this.drawing = false;
      if (this.again) {
        this.again = false;
        this.request();
      }
    }
  }
}
