// @ts-check
/** How numbers, durations and times read in the page. Pure. */

/**
 * A metric value: 4 significant digits, scientific for very small or large magnitudes.
 * @param {number|null|undefined} value
 */
export function formatValue(value) {
  if (value === null || value === undefined) return "–";
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs < 1e-3 || abs >= 1e6) return value.toExponential(3);
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(4)));
}

/**
 * A duration in seconds as "1h 02m", "3m 05s", "42s".
 * @param {number|null|undefined} seconds
 */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/**
 * UNIX seconds as a local date and time, without the date when it is today.
 * @param {number|null|undefined} unix
 * @param {Date} [now]
 */
export function formatTime(unix, now = new Date()) {
  if (unix === null || unix === undefined) return "–";
  const d = new Date(unix * 1000);
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

/**
 * How long a job ran (or has run so far), in seconds; null before it starts.
 * @param {{started_at: number|null, finished_at: number|null}} job
 * @param {number} [nowSeconds]
 */
export function jobDuration(job, nowSeconds = Date.now() / 1000) {
  if (!job.started_at) return null;
  return (job.finished_at ?? nowSeconds) - job.started_at;
}

/**
 * How far a job is, from 0 to 1, for its progress bar: a completed job is full even when it stopped
 * before max_steps (early stopping), one without max_steps yet is empty.
 * @param {{state: string, progress: {step: number, max_steps: number}}} job
 */
export function jobFraction(job) {
  if (job.state === "completed") return 1;
  const p = job.progress;
  return p.max_steps ? Math.min(1, p.step / p.max_steps) : 0;
}

/**
 * The one eval figure a list shows: accuracy, else F1, else the first non-loss, else eval loss.
 * @param {Record<string, number>|null|undefined} best
 * @returns {[string, number] | null}
 */
export function headlineMetric(best) {
  if (!best) return null;
  const names = Object.keys(best);
  const pick = ["eval/accuracy", "eval/f1", "eval/exact_match", "eval/bleu", "eval/seqeval_f1"].find((n) => n in best)
    ?? names.find((n) => n.startsWith("eval/") && !n.includes("loss"))
    ?? names.find((n) => n.includes("loss"));
  return pick ? [pick, best[pick]] : null;
}

/**
 * A series name without its namespace, for titles: "eval/accuracy" -> "accuracy (eval)".
 * @param {string} name
 */
export function seriesTitle(name) {
  const at = name.indexOf("/");
  if (at < 0) return name;
  return `${name.slice(at + 1).replaceAll("_", " ")} (${name.slice(0, at)})`;
}

/**
 * A log line as a terminal would leave it: colour codes removed, and of a progress bar redrawn with
 * carriage returns only the last state.
 * @param {string} text
 */
export function cleanLogText(text) {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "");
  const parts = plain.split("\r").filter((p) => p.length > 0);
  return parts.length ? parts[parts.length - 1] : "";
}
