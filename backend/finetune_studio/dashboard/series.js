// @ts-check
/**
 * Pure data for metric series: smoothing, merging history with live points, bucketing. No DOM, so
 * `node --test tests/js/` covers it.
 *
 * A series is three parallel arrays sorted by step, as `GET /api/jobs/{id}/metrics` sends them
 * (backend/finetune_studio/wire/jobs.py `Series`); a null value is a NaN/inf that the server turned to null.
 */

/** @typedef {{step: number[], value: (number|null)[], time: number[]}} SeriesData */
/** @typedef {"step" | "relative" | "wall"} XMode */

/** @returns {SeriesData} */
export function emptySeries() {
  return { step: [], value: [], time: [] };
}

/** Highest smoothing weight the slider offers: at 1 the average would never move. */
export const MAX_SMOOTHING = 0.999;

/**
 * TensorBoard's debiased exponential moving average. The running average starts at 0 and is divided
 * by (1 - weight^n), so the first points are not dragged towards 0. Nulls (NaN/inf on the wire) stay
 * null and do not move the average.
 * @param {(number|null)[]} values
 * @param {number} weight 0 = raw, up to MAX_SMOOTHING
 * @returns {(number|null)[]}
 */
export function emaSmooth(values, weight) {
  const w = Math.min(Math.max(weight, 0), MAX_SMOOTHING);
  if (w === 0) return values.slice();
  /** @type {(number|null)[]} */
  const out = new Array(values.length);
  let last = 0;
  let debias = 1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    last = last * w + (1 - w) * v;
    debias *= w; // w^n, kept as a product rather than Math.pow in the loop
    out[i] = last / (1 - debias);
  }
  return out;
}

/**
 * Whether a chart is smoothed unless the user ticks it otherwise: noisy per-batch measurements, the
 * training losses and gradient norms. Not schedules (the learning rate: a smoothed warm-up lags the
 * real one), counters (epoch, runtimes, throughput), the machine's gauges, nor evaluations, each point
 * of which is already a mean over the whole eval set.
 * @param {string} name
 */
export function smoothedByDefault(name) {
  if (name.startsWith("eval/") || name.startsWith("system/")) return false;
  const base = name.slice(name.indexOf("/") + 1);
  return /loss|grad_norm/.test(base) && !/(runtime|per_second|steps_per|samples_per)/.test(base);
}

/**
 * Index of the first point whose step is >= `step` (binary search; steps are sorted).
 * @param {number[]} steps
 * @param {number} step
 */
export function lowerBound(steps, step) {
  let lo = 0;
  let hi = steps.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (steps[mid] < step) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Add one live point to `target` (in place), by step: after the last point it is appended; at a step
 * already there it replaces the value (the store keeps one value per step too, so a replayed event
 * changes nothing); before the last one (a resumed attempt re-logging from its checkpoint) it is
 * inserted in order. The page then shows what a reload would show.
 * @param {SeriesData} target
 * @param {number} step
 * @param {number|null} value
 * @param {number} time
 * @returns {boolean} true when the point is new, false when it replaced one
 */
export function appendPoint(target, step, value, time) {
  const n = target.step.length;
  if (n === 0 || step > target.step[n - 1]) {
    target.step.push(step);
    target.value.push(value);
    target.time.push(time);
    return true;
  }
  const at = lowerBound(target.step, step);
  if (target.step[at] === step) {
    target.value[at] = value;
    target.time[at] = time;
    return false;
  }
  target.step.splice(at, 0, step);
  target.value.splice(at, 0, value);
  target.time.splice(at, 0, time);
  return true;
}

/**
 * Merge a (possibly downsampled) history with live points that arrived while it was loading.
 * History is the truth up to its last step: a live point at a step the history holds replaces that
 * value, one at a step the history dropped while downsampling is not re-inserted. Live points after
 * the history's last step are appended. So nothing is lost at the seam and nothing appears twice.
 * @param {SeriesData} history
 * @param {SeriesData} live
 * @returns {SeriesData}
 */
export function mergeHistory(history, live) {
  const out = { step: history.step.slice(), value: history.value.slice(), time: history.time.slice() };
  const lastHistoryStep = out.step.length ? out.step[out.step.length - 1] : -Infinity;
  for (let i = 0; i < live.step.length; i++) {
    const step = live.step[i];
    if (step > lastHistoryStep) {
      appendPoint(out, step, live.value[i], live.time[i]);
      continue;
    }
    const at = lowerBound(out.step, step);
    if (out.step[at] === step) {
      out.value[at] = live.value[i];
      out.time[at] = live.time[i];
    }
  }
  return out;
}

/**
 * Downsample to about `maxPoints` by cutting the step range into equal buckets and keeping, in each,
 * the point with the lowest value, the one with the highest, and the first null: spikes and
 * divergences survive, and every kept point is a real point (hover shows exact values).
 * The first and last points are always kept.
 * @param {SeriesData} series
 * @param {number} maxPoints
 * @returns {SeriesData}
 */
export function downsampleMinMax(series, maxPoints) {
  return series.step.length <= maxPoints || series.step.length < 3 ? series : pick(series, minMaxIndices(series, maxPoints));
}

/**
 * The indices `downsampleMinMax` keeps, ascending (all of them when the series fits): charts.js thins
 * the smoothed line at the same points as the raw one, so both share one x array.
 * @param {SeriesData} series
 * @param {number} maxPoints
 * @returns {number[]}
 */
export function minMaxIndices(series, maxPoints) {
  const n = series.step.length;
  if (n <= maxPoints || n < 3) return Array.from({ length: n }, (_, i) => i);
  const buckets = Math.max(1, Math.floor(maxPoints / 2));
  const first = series.step[0];
  const span = series.step[n - 1] - first + 1;
  /** @type {number[]} */
  const keep = [0];
  let bucket = -1;
  let minAt = -1;
  let maxAt = -1;
  let nullAt = -1;
  const flush = () => {
    const picked = [minAt, maxAt, nullAt].filter((i) => i >= 0).sort((a, b) => a - b);
    for (const i of picked) if (i !== keep[keep.length - 1]) keep.push(i);
  };
  for (let i = 0; i < n; i++) {
    const b = Math.min(buckets - 1, Math.floor(((series.step[i] - first) / span) * buckets));
    if (b !== bucket) {
      if (bucket >= 0) flush();
      bucket = b;
      minAt = maxAt = nullAt = -1;
    }
    const v = series.value[i];
    if (v === null) {
      if (nullAt < 0) nullAt = i;
      continue;
    }
    if (minAt < 0 || v < /** @type {number} */ (series.value[minAt])) minAt = i;
    if (maxAt < 0 || v > /** @type {number} */ (series.value[maxAt])) maxAt = i;
  }
  flush();
  if (keep[keep.length - 1] !== n - 1) keep.push(n - 1);
  return keep;
}

/**
 * The points of `series` at `indices`.
 * @param {SeriesData} series
 * @param {number[]} indices
 * @returns {SeriesData}
 */
export function pick(series, indices) {
  return {
    step: indices.map((i) => series.step[i]),
    value: indices.map((i) => series.value[i]),
    time: indices.map((i) => series.time[i]),
  };
}

/**
 * A series with the points of a zoomed range replaced by the server's points for that range (exact
 * where the page kept only buckets). Outside [from, to] the page's points stay; inside, `fetched`'s,
 * then any of the page's that arrived live after the fetched ones.
 * @param {SeriesData} kept the page's points
 * @param {SeriesData} fetched the server's points of steps from..to
 * @param {number} from
 * @param {number} to
 * @returns {SeriesData}
 */
export function spliceRange(kept, fetched, from, to) {
  const start = lowerBound(kept.step, from);
  const end = lowerBound(kept.step, Math.floor(to) + 1);
  const lastFetched = fetched.step.length ? fetched.step[fetched.step.length - 1] : -Infinity;
  const live = Math.max(start, lowerBound(kept.step, lastFetched + 1));
  const inFetched = [lowerBound(fetched.step, from), lowerBound(fetched.step, Math.floor(to) + 1)];
  /** @param {(number|null)[]} a @param {(number|null)[]} b */
  const join = (a, b) => [...a.slice(0, start), ...b.slice(inFetched[0], inFetched[1]), ...a.slice(live, end), ...a.slice(end)];
  return {
    step: /** @type {number[]} */ (join(kept.step, fetched.step)),
    value: join(kept.value, fetched.value),
    time: /** @type {number[]} */ (join(kept.time, fetched.time)),
  };
}

/**
 * Downsample to about `maxPoints` for a chart zoomed to steps [from, to]: the visible points get the
 * whole budget (exact when they fit), the hidden ones on either side a quarter each (enough to pan).
 * @param {SeriesData} series
 * @param {number} from
 * @param {number} to
 * @param {number} maxPoints
 * @returns {SeriesData}
 */
export function downsampleAround(series, from, to, maxPoints) {
  return pick(series, aroundIndices(series, from, to, maxPoints));
}

/**
 * The indices `downsampleAround` keeps, ascending.
 * @param {SeriesData} series
 * @param {number} from
 * @param {number} to
 * @param {number} maxPoints
 * @returns {number[]}
 */
export function aroundIndices(series, from, to, maxPoints) {
  const a = lowerBound(series.step, from);
  const b = lowerBound(series.step, Math.floor(to) + 1);
  /** @param {number} i @param {number} j @param {number} budget */
  const part = (i, j, budget) => {
    const slice = { step: series.step.slice(i, j), value: series.value.slice(i, j), time: series.time.slice(i, j) };
    return minMaxIndices(slice, budget).map((k) => k + i);
  };
  return [...part(0, a, Math.ceil(maxPoints / 4)), ...part(a, b, maxPoints), ...part(b, series.step.length, Math.ceil(maxPoints / 4))];
}

/**
 * The points of one series kept in the page, bounded: past `cap` points, everything but the newest
 * quarter is bucketed down to half the cap (min/max per bucket), so a run logging for days keeps the
 * page's memory flat while recent points stay exact.
 */
export class SeriesBuffer {
  /** @param {number} cap */
  constructor(cap = 20000) {
    this.cap = Math.max(16, cap);
    /** @type {SeriesData} */
    this.data = emptySeries();
    /** Bumped on every change, so views redraw only what changed. */
    this.version = 0;
    /**
     * Bumped on every change but a point added after the last one: while it stays, a view that drew
     * the first n points can append the rest instead of drawing again.
     */
    this.rewrites = 0;
    /** Last step of the loaded history: up to it, the (downsampled) history decides which steps exist. */
    this.historyEnd = -Infinity;
  }

  get length() {
    return this.data.step.length;
  }

  get lastStep() {
    const s = this.data.step;
    return s.length ? s[s.length - 1] : null;
  }

  /** @param {SeriesData} history */
  setHistory(history) {
    this.data = mergeHistory(history, this.data);
    if (history.step.length) this.historyEnd = Math.max(this.historyEnd, history.step[history.step.length - 1]);
    this.compact();
    this.version++;
    this.rewrites++;
  }

  /**
   * @param {number} step
   * @param {number|null} value
   * @param {number} time
   * @returns {boolean} true when the point is new, false when it replaced one
   */
  add(step, value, time) {
    if (step <= this.historyEnd) {
      // as mergeHistory: a step the downsampled history left out stays out (a stream replaying
      // from the start then costs a binary search per event, not an insert)
      const at = lowerBound(this.data.step, step);
      if (this.data.step[at] !== step) return false;
      this.data.value[at] = value;
      this.data.time[at] = time;
      this.version++;
      this.rewrites++;
      return false;
    }
    const last = this.lastStep;
    const added = appendPoint(this.data, step, value, time);
    if (last !== null && step <= last) this.rewrites++;
    if (this.data.step.length > this.cap) {
      this.compact();
      this.rewrites++;
    }
    this.version++;
    return added;
  }

  compact() {
    const n = this.data.step.length;
    if (n <= this.cap) return;
    const recent = Math.floor(this.cap / 4);
    const split = n - recent;
    const d = this.data;
    const head = downsampleMinMax(
      { step: d.step.slice(0, split), value: d.value.slice(0, split), time: d.time.slice(0, split) },
      Math.floor(this.cap / 2),
    );
    this.data = {
      step: head.step.concat(d.step.slice(split)),
      value: head.value.concat(d.value.slice(split)),
      time: head.time.concat(d.time.slice(split)),
    };
  }
}

/**
 * The x values of a series for an axis mode: steps, seconds since `origin` (the job's start), or
 * wall-clock Dates.
 * @param {SeriesData} series
 * @param {XMode} mode
 * @param {number} origin UNIX seconds
 * @returns {(number|Date)[]}
 */
export function xValues(series, mode, origin) {
  if (mode === "relative") return series.time.map((t) => t - origin);
  if (mode === "wall") return series.time.map((t) => new Date(t * 1000));
  return series.step;
}

/**
 * Metrics as CSV, one row per (series, step): the shape pandas and spreadsheets read directly.
 * @param {Record<string, SeriesData>} seriesByName
 * @returns {string}
 */
export function toCsv(seriesByName) {
  const rows = ["name,step,value,time"];
  for (const name of Object.keys(seriesByName).sort()) {
    const s = seriesByName[name];
    const quoted = /[",\n]/.test(name) ? `"${name.replaceAll('"', '""')}"` : name;
    for (let i = 0; i < s.step.length; i++) {
      rows.push(`${quoted},${s.step[i]},${s.value[i] ?? ""},${s.time[i]}`);
    }
  }
  return rows.join("\n") + "\n";
}

/**
 * Order in which series get charts: train loss first, then eval metrics, then the optimiser's, then
 * the machine's. Series that only count (epoch, runtimes, throughput) come last.
 * @param {string} name
 */
export function chartRank(name) {
  if (name === "train/loss") return 0;
  if (name === "eval/loss") return 1;
  if (/(runtime|per_second|steps_per|samples_per)/.test(name)) return 6;
  if (name.startsWith("eval/")) return 2;
  if (name === "train/learning_rate") return 3;
  if (name === "train/grad_norm") return 4;
  if (name.startsWith("system/")) return 5;
  if (name === "train/epoch") return 7;
  return 5.5;
}

/**
 * @param {string[]} names
 * @returns {string[]}
 */
export function chartOrder(names) {
  return names
    .filter((n) => n !== "train/epoch" && !n.startsWith("summary/"))
    .slice()
    .sort((a, b) => chartRank(a) - chartRank(b) || a.localeCompare(b));
}
