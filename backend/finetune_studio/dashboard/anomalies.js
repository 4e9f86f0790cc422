// @ts-check
/**
 * A job's anomalies (issue 15): the `anomaly` events its detectors sent (a non-finite loss, a loss
 * spike, a gradient spike), as records, as markers on the train loss chart, and as words. Pure data:
 * no DOM, testable with `node --test`.
 *
 * They come from two places: `GET /api/jobs/{id}/events?types=anomaly` for those before the page
 * opened, and the job's stream for new ones; `AnomalyLog` keeps each once, by seq.
 */

import { formatValue } from "./format.js";
import { lowerBound } from "./series.js";

/** @typedef {import("./series.js").SeriesData} SeriesData */
/** @typedef {import("./feed.js").StreamEvent} StreamEvent */
/**
 * Mirrors backend/finetune_studio/anomaly.py `Anomaly.to_event()`, with the event's seq and time.
 * `value` null: not a finite number. `rows`: the batch's rows in the training file. `saved_to`: where
 * the batch was saved when no debugger was attached.
 * @typedef {{seq: number, time: number, kind: string, step: number, value: number|null,
 *   threshold: number|null, detail: string, rows: number[], saved_to: string|null}} Anomaly
 */

export const KIND_TITLES = /** @type {Record<string, string>} */ ({
  nan: "Non-finite value", spike: "Loss spike", grad_spike: "Gradient spike",
});

/** More markers than this on one chart only hide the curve: the newest are kept. */
export const MAX_MARKERS = 1000;

/**
 * The anomaly an event carries, or null when it is not one (another type, or data without a step).
 * @param {StreamEvent} event
 * @returns {Anomaly|null}
 */
export function anomalyFromEvent(event) {
  const d = event?.data;
  if (event?.type !== "anomaly" || !d || !Number.isInteger(d.step)) return null;
  const num = (/** @type {any} */ v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  return {
    seq: event.seq, time: event.time, kind: String(d.kind ?? "anomaly"), step: d.step,
    value: num(d.value), threshold: num(d.threshold), detail: String(d.detail ?? ""),
    rows: Array.isArray(d.rows) ? d.rows.filter(Number.isInteger) : [],
    saved_to: typeof d.saved_to === "string" && d.saved_to ? d.saved_to : null,
  };
}

/** A job's anomalies in step order, each once however often a reconnect or the history repeats it. */
export class AnomalyLog {
  constructor() {
    /** @type {Anomaly[]} */
    this.items = [];
    /** @type {Set<number>} */
    this.seqs = new Set();
  }

  /**
   * @param {StreamEvent} event
   * @returns {Anomaly|null} the anomaly when it is new
   */
  add(event) {
    const anomaly = anomalyFromEvent(event);
    if (!anomaly || this.seqs.has(anomaly.seq)) return null;
    this.seqs.add(anomaly.seq);
    const at = this.items.findLastIndex((a) => a.step < anomaly.step || (a.step === anomaly.step && a.seq < anomaly.seq));
    this.items.splice(at + 1, 0, anomaly);
    return anomaly;
  }

  /**
   * The last anomaly at `step`, if any (two detectors can fire on one step).
   * @param {number} step
   */
  at(step) {
    return this.items.findLast((a) => a.step === step) ?? null;
  }

  get length() {
    return this.items.length;
  }
}

/**
 * Where each anomaly sits on the loss chart: at its step, at the loss drawn there. A step whose loss
 * is not a finite number (the `nan` detector's case, drawn as a gap) or not kept takes the nearest
 * finite loss; with no loss at all, the anomaly's own value, else 0.
 * @param {Anomaly[]} anomalies in step order
 * @param {SeriesData} loss
 * @returns {SeriesData & {kind: string[], text: string[]}} `time` is the anomaly's (for time axes)
 */
export function anomalyMarkers(anomalies, loss) {
  const shown = anomalies.slice(-MAX_MARKERS);
  const out = { step: /** @type {number[]} */ ([]), value: /** @type {(number|null)[]} */ ([]),
    time: /** @type {number[]} */ ([]), kind: /** @type {string[]} */ ([]), text: /** @type {string[]} */ ([]) };
  for (const a of shown) {
    out.step.push(a.step);
    out.value.push(nearestFinite(loss, a.step) ?? a.value ?? 0);
    out.time.push(a.time);
    out.kind.push(a.kind);
    out.text.push(describe(a));
  }
  return out;
}

/**
 * The finite value at `step` or, failing that, the nearest finite one by step (earlier on a tie).
 * @param {SeriesData} series sorted by step
 * @param {number} step
 */
export function nearestFinite(series, step) {
  const { step: steps, value } = series;
  const finite = (/** @type {number} */ j) => typeof value[j] === "number" && Number.isFinite(value[j]);
  let right = lowerBound(steps, step); // the first step at or after `step`
  let left = right - 1;
  while (left >= 0 && !finite(left)) left--;
  while (right < steps.length && !finite(right)) right++;
  if (left < 0 && right >= steps.length) return null;
  const pick = right >= steps.length || (left >= 0 && step - steps[left] <= steps[right] - step) ? left : right;
  return /** @type {number} */ (value[pick]);
}

/**
 * One line about an anomaly: what fired, where, and by how much.
 * @param {Anomaly} a
 */
export function describe(a) {
  const title = KIND_TITLES[a.kind] ?? a.kind;
  const value = a.value === null ? (a.kind === "nan" ? "NaN or ±inf" : null) : formatValue(a.value);
  const measured = [value !== null ? `value ${value}` : null, a.threshold !== null ? `threshold ${formatValue(a.threshold)}` : null]
    .filter(Boolean).join(", ");
  return `${title} at step ${a.step}${measured ? ` (${measured})` : ""}${a.detail ? `: ${a.detail}` : ""}`;
}

/**
 * The training rows, shortened for a line of text.
 * @param {number[]} rows
 * @param {number} [max]
 */
export function rowsText(rows, max = 20) {
  if (!rows.length) return "none reported";
  return rows.slice(0, max).join(", ") + (rows.length > max ? `, … (${rows.length} rows)` : "");
}
