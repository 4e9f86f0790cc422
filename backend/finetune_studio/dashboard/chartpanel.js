// @ts-check
/**
 * The Charts tab of a job: one chart per series (train loss first), the controls shared by all of
 * them (smoothing weight, y scale, x axis, reset zoom, CSV), a "smoothed" box per chart, and the
 * redraw of what changed since the last animation frame. Clicking a point of the train loss opens
 * that step's batch; the job's anomalies are markers on the train loss, and a click on one opens its
 * batch too. The machine's series (`system/...`: each process's CPU, memory and GPU) are charted in a
 * "System" group below the others, collapsed unless the user opened it (its charts are drawn only
 * while it is open).
 */

import { anomalyMarkers } from "./anomalies.js";
import { chartPng, drawSeries, isDrawn, onPointClick, onZoom, resetZoom } from "./charts.js";
import { seriesTitle } from "./format.js";
import { download, h, replace } from "./html.js";
import { chartOrder, smoothedByDefault, spliceRange, toCsv } from "./series.js";

/** @typedef {import("./feed.js").JobFeed} JobFeed */
/** @typedef {import("./series.js").SeriesData} SeriesData */
/**
 * A chart zoomed to steps from..to, and the server's points of that range once they came.
 * @typedef {{from: number, to: number, points: SeriesData|null}} Zoom
 */
/**
 * `smooth`: the charts whose box the user ticked or unticked, by series name; the others follow
 * `smoothedByDefault`. `systemOpen`: the System group is open. Kept in localStorage, so the choice holds
 * for every job and across reloads.
 * @typedef {{smoothing: number, yLog: boolean, xMode: import("./series.js").XMode,
 *   smooth: Record<string, boolean>, systemOpen: boolean}} ChartSettings
 */

const SETTINGS_KEY = "fts.charts";
const FRAME_BUDGET_MS = 40;
/** A zoom waits this long for the next one (a pan or a scroll sends many) before asking the server. */
const ZOOM_SETTLE_MS = 150;

/** @returns {ChartSettings} */
function loadSettings() {
  const fallback = { smoothing: 0.6, yLog: false, xMode: /** @type {const} */ ("step"), smooth: {}, systemOpen: false };
  let saved;
  try {
    saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "{}");
  } catch {
    return fallback; // hand-edited or from another app on this origin: start over
  }
  const smooth = Object.fromEntries(Object.entries(saved.smooth ?? {}).filter(([, v]) => typeof v === "boolean"));
  return {
    smoothing: typeof saved.smoothing === "number" ? saved.smoothing : fallback.smoothing,
    yLog: Boolean(saved.yLog),
    xMode: ["step", "relative", "wall"].includes(saved.xMode) ? saved.xMode : fallback.xMode,
    smooth,
    systemOpen: Boolean(saved.systemOpen),
  };
}

/** A series of the System group (backend/finetune_studio/system_metrics.py). @param {string} name */
function isSystem(name) {
  return name.startsWith("system/");
}

/**
 * What the System series measure, by the last part of their names (docs/api.md, "System series"), in
 * the order of their charts. A GPU's total memory is no chart: the used memory's title says it.
 */
const SYSTEM_TITLES = {
  cpu_percent: "CPU % (100 = one core)", rss_mb: "resident memory (MiB)",
  gpu_utilization_percent: "GPU utilisation %", gpu_memory_used_mb: "GPU memory used (MiB)",
  gpu_power_w: "GPU power (W)",
};
const SYSTEM_ORDER = Object.keys(SYSTEM_TITLES);

/** @param {string} name @returns {[number, string]} rank and measure of "system/rank1/rss_mb" */
function systemParts(name) {
  const match = name.match(/^system\/rank(\d+)\/(.+)$/);
  return match ? [Number(match[1]), match[2]] : [-1, name];
}

/**
 * "system/rank1/rss_mb" -> "rank 1: resident memory (MiB)"; the GPU's memory with its total.
 * @param {string} name
 * @param {number|null|undefined} [total] the GPU's total memory, for its used memory's chart
 */
export function systemTitle(name, total) {
  const [rank, measure] = systemParts(name);
  if (rank < 0) return seriesTitle(name);
  const title = SYSTEM_TITLES[/** @type {keyof typeof SYSTEM_TITLES} */ (measure)] ?? measure.replaceAll("_", " ");
  return `rank ${rank}: ${title}${total ? ` of ${Math.round(total).toLocaleString("en")}` : ""}`;
}

/** System charts by rank, then measure. @param {string[]} names */
function systemOrder(names) {
  /** @param {string} name */
  const key = (name) => {
    const [rank, measure] = systemParts(name);
    const at = SYSTEM_ORDER.indexOf(measure);
    return [rank, at < 0 ? SYSTEM_ORDER.length : at];
  };
  return names.slice().sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    return ka[0] - kb[0] || ka[1] - kb[1] || a.localeCompare(b);
  });
}

/** A series name as an element id: "train/loss" -> "chart-train-loss". @param {string} name */
export function chartId(name) {
  return `chart-${name.replace(/[^A-Za-z0-9_-]+/g, "-")}`;
}

export class ChartPanel {
  /**
   * @param {HTMLElement} root the tab panel
   * @param {JobFeed} feed
   * @param {{onStepClick: (step: number) => void, requestDraw: () => void,
   *   loadRange: (name: string, from: number, to: number, maxPoints: number) => Promise<SeriesData>}} hooks
   */
  constructor(root, feed, hooks) {
    this.root = root;
    this.feed = feed;
    this.hooks = hooks;
    this.settings = loadSettings();
    /** @type {Map<string, HTMLElement>} */
    this.charts = new Map();
    /** @type {Set<string>} series to redraw at the next frame */
    this.dirty = new Set();
    /** @type {Map<string, number>} buffer version last drawn */
    this.drawnVersion = new Map();
    /** @type {Map<string, {rewrites: number, length: number}>} the buffer as last drawn, to append to it */
    this.drawnBuffer = new Map();
    /** @type {Map<string, Zoom>} charts zoomed in on a range of steps */
    this.zooms = new Map();
    /** @type {Map<string, ReturnType<typeof setTimeout>>} */
    this.zoomTimers = new Map();
    this.revision = 1;
    this.visible = true;
    this.grid = h("div.charts", { id: "charts" });
    this.empty = h("div.empty", { id: "charts-empty" },
      "No points yet: the first arrive after `logging_steps` optimizer steps.");
    this.systemGrid = h("div.charts", { id: "charts-system" });
    this.systemNote = h("span.muted", { id: "system-note" });
    this.systemGroup = /** @type {HTMLDetailsElement} */ (h("details.chart-group", {
      id: "chart-group-system", hidden: true, open: this.settings.systemOpen },
    h("summary", { title: "CPU, memory and GPU of every process of the job, sampled about every 5 s" },
      h("strong", null, "System"), " ", this.systemNote),
    this.systemGrid));
    this.systemGroup.addEventListener("toggle", () => {
      this.settings.systemOpen = this.systemGroup.open;
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(this.settings));
      if (this.systemGroup.open) for (const name of this.charts.keys()) if (isSystem(name)) this.redrawChart(name);
    });
    replace(root, this.toolbar(), this.empty, this.grid, this.systemGroup);
  }

  toolbar() {
    const s = this.settings;
    const smoothingValue = h("output", { id: "smoothing-value" }, s.smoothing.toFixed(2));
    const slider = /** @type {HTMLInputElement} */ (h("input", {
      id: "smoothing", type: "range", min: "0", max: "0.99", step: "0.01", value: String(s.smoothing),
      "aria-label": "smoothing",
    }));
    slider.addEventListener("input", () => {
      s.smoothing = Number(slider.value);
      smoothingValue.textContent = s.smoothing.toFixed(2);
      this.changed();
    });
    const yScale = /** @type {HTMLSelectElement} */ (h("select", { id: "y-scale", "aria-label": "y axis" },
      h("option", { value: "linear", selected: !s.yLog }, "linear"),
      h("option", { value: "log", selected: s.yLog }, "log")));
    yScale.addEventListener("change", () => {
      s.yLog = yScale.value === "log";
      this.changed();
    });
    const xMode = /** @type {HTMLSelectElement} */ (h("select", { id: "x-mode", "aria-label": "x axis" },
      h("option", { value: "step", selected: s.xMode === "step" }, "step"),
      h("option", { value: "relative", selected: s.xMode === "relative" }, "relative time"),
      h("option", { value: "wall", selected: s.xMode === "wall" }, "wall time")));
    xMode.addEventListener("change", () => {
      s.xMode = /** @type {ChartSettings["xMode"]} */ (xMode.value);
      this.revision++; // a new x axis: forget the zoom
      this.zooms.clear();
      this.changed();
    });
    return h("div.toolbar", null,
      h("label", { title: "exponential moving average, debiased as in TensorBoard, of the charts whose " +
        "\"smoothed\" box is ticked (losses and gradient norms unless you change it); the raw line stays drawn" },
      "Smoothing", slider, smoothingValue),
      h("label", null, "Y", yScale),
      h("label", null, "X", xMode),
      h("button", { id: "reset-zoom", type: "button", onclick: () => resetZoom(this.root) }, "Reset zoom"),
      h("button", { id: "export-csv", type: "button", title: "every point kept in this page, as CSV",
        onclick: () => download(`${this.feed.job.name || this.feed.job.id}-metrics.csv`, toCsv(this.feed.seriesData())) },
      "CSV"),
    );
  }

  changed() {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(this.settings));
    for (const name of this.charts.keys()) this.dirty.add(name);
    this.drawnVersion.clear();
    this.hooks.requestDraw();
  }

  /**
   * The user zoomed (or panned) a chart to steps from..to, or autoscaled it (null). Once the zoom
   * settles, ask the server for that range: where the page keeps only buckets of a long run, the
   * server has every point, so a zoom in ends on raw points. Time axes are not zoomed by step.
   * @param {string} name
   * @param {[number, number]|null} range
   */
  zoom(name, range) {
    clearTimeout(this.zoomTimers.get(name));
    if (!range || this.settings.xMode !== "step") {
      if (this.zooms.delete(name)) this.redrawChart(name);
      return;
    }
    const zoom = { from: Math.max(0, Math.floor(range[0])), to: Math.ceil(range[1]), points: null };
    this.zooms.set(name, zoom);
    this.zoomTimers.set(name, setTimeout(async () => {
      const el = this.charts.get(name);
      const points = await this.hooks.loadRange(name, zoom.from, zoom.to, Math.max(400, 2 * (el?.clientWidth || 800)));
      if (this.zooms.get(name) !== zoom) return; // zoomed elsewhere meanwhile
      zoom.points = points;
      this.redrawChart(name);
    }, ZOOM_SETTLE_MS));
  }

  /** @param {string} name */
  redrawChart(name) {
    this.dirty.add(name);
    this.drawnVersion.delete(name);
    this.hooks.requestDraw();
  }

  /** @param {string} name */
  smoothed(name) {
    return this.settings.smooth[name] ?? smoothedByDefault(name);
  }

  /**
   * @param {string} name
   * @param {boolean} on
   */
  setSmoothed(name, on) {
    if (on === smoothedByDefault(name)) delete this.settings.smooth[name];
    else this.settings.smooth[name] = on;
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(this.settings));
    this.redrawChart(name);
  }

  /** The job's anomalies changed: the train loss gets its markers again. */
  anomaliesChanged() {
    this.redrawChart("train/loss");
  }

  /** @param {Iterable<string>} names series that gained points */
  markDirty(names) {
    for (const name of names) if (name !== "train/epoch") this.dirty.add(name);
  }

  /** @param {string} name */
  card(name) {
    let el = this.charts.get(name);
    if (el) return el;
    el = h("div.chart", { id: chartId(name), "data-series": name });
    const toggle = /** @type {HTMLInputElement} */ (h("input.smooth-toggle", {
      type: "checkbox", "data-series": name, checked: this.smoothed(name) }));
    toggle.addEventListener("change", () => this.setSmoothed(name, toggle.checked));
    const png = h("button.png", { type: "button", title: "this chart as a PNG image", onclick: async () => {
      const image = await chartPng(/** @type {HTMLElement} */ (el));
      if (image) download(`${this.feed.job.name || this.feed.job.id}-${name.replaceAll("/", "-")}.png`, image, "image/png");
    } }, "PNG");
    const card = h("div.chart-card", { "data-series": name }, el,
      h("div.chart-foot", null, h("div.note"), h("label.smooth-label", { title: "draw a smoothed line over the raw one" },
        toggle, "smoothed"), png));
    this.charts.set(name, el);
    const group = isSystem(name);
    const order = group ? systemOrder([...this.charts.keys()].filter(isSystem))
      : chartOrder([...this.charts.keys()].filter((n) => !isSystem(n)));
    const before = order[order.indexOf(name) + 1];
    const next = before ? this.charts.get(before)?.parentElement : null;
    (group ? this.systemGrid : this.grid).insertBefore(card, next ?? null);
    this.empty.hidden = true;
    if (group) this.systemChanged();
    return el;
  }

  /** The System group's heading: how many charts, of which processes. */
  systemChanged() {
    const names = [...this.charts.keys()].filter(isSystem);
    const ranks = [...new Set(names.map((n) => n.match(/^system\/rank(\d+)\//)?.[1]).filter((r) => r !== undefined))];
    this.systemGroup.hidden = names.length === 0;
    this.systemNote.textContent = `${names.length} chart${names.length === 1 ? "" : "s"}` +
      (ranks.length ? ` · rank${ranks.length === 1 ? "" : "s"} ${ranks.join(", ")}` : "");
  }

  /**
   * Draw the charts whose series changed; called once per animation frame. A Plotly redraw costs tens
   * of milliseconds, so a frame draws in chart order (train loss first) until FRAME_BUDGET_MS is
   * spent and leaves the rest to the next frame: the train loss never waits behind a dozen charts.
   */
  async draw() {
    if (!this.visible || this.dirty.size === 0) return [];
    const names = chartOrder([...this.dirty]);
    this.dirty.clear();
    const job = this.feed.job;
    const origin = job.started_at ?? job.created_at;
    const started = performance.now();
    /** @type {string[]} */
    const drawn = [];
    for (const [i, name] of names.entries()) {
      if (drawn.length && performance.now() - started > FRAME_BUDGET_MS) {
        for (const later of names.slice(i)) this.dirty.add(later);
        this.hooks.requestDraw();
        break;
      }
      const buffer = this.feed.series.get(name);
      if (!buffer || buffer.length === 0 || name.endsWith("/gpu_memory_total_mb")) continue;
      if (this.drawnVersion.get(name) === buffer.version) continue;
      const el = this.card(name);
      if (isSystem(name) && !this.systemGroup.open) continue; // drawn when the group opens
      this.drawnVersion.set(name, buffer.version);
      const first = !isDrawn(el);
      const zoom = this.zooms.get(name);
      const before = this.drawnBuffer.get(name);
      const onlyAppended = !zoom && before?.rewrites === buffer.rewrites;
      this.drawnBuffer.set(name, { rewrites: buffer.rewrites, length: buffer.length });
      const how = await drawSeries(el, {
        appendFrom: onlyAppended ? before?.length : undefined,
        title: isSystem(name)
          ? systemTitle(name, name.endsWith("/gpu_memory_used_mb")
            ? this.feed.series.get(name.replace(/used_mb$/, "total_mb"))?.data.value.at(-1) : null)
          : seriesTitle(name),
        smoothing: this.smoothed(name) ? this.settings.smoothing : 0,
        series: zoom?.points ? spliceRange(buffer.data, zoom.points, zoom.from, zoom.to) : buffer.data,
        visible: zoom ? [zoom.from, zoom.to] : null,
        yLog: this.settings.yLog, xMode: this.settings.xMode, origin, revision: this.revision,
        markers: name === "train/loss" && this.feed.anomalies.length ? anomalyMarkers(this.feed.anomalies.items, buffer.data) : null,
        filename: `${job.name || job.id}-${name.replace("/", "-")}`,
      });
      if (first) {
        onZoom(el, (range) => this.zoom(name, range));
        if (name === "train/loss") onPointClick(el, (step) => this.hooks.onStepClick(step));
      }
      const total = this.feed.totalPoints[name];
      const note = /** @type {HTMLElement} */ (el.parentElement?.querySelector(".note"));
      note.textContent = zoom?.points
        ? `steps ${zoom.from}–${zoom.to}: ${zoom.points.step.length.toLocaleString()} points from the server`
        : total && total > buffer.length
          ? `${total.toLocaleString()} points logged; ${buffer.length.toLocaleString()} kept here (older ones bucketed, spikes kept)`
          : name !== "train/loss" ? ""
            : job.kind === "managed" ? "click a point to see the batch of that step"
              : this.feed.anomalies.length ? "click a marker to see its anomaly's batch" : "";
      drawn.push(name);
      // tests and benchmarks watch this (benchmarks/bench_dashboard.py: on_log -> drawn)
      document.dispatchEvent(new CustomEvent("fts:drawn", {
        detail: { job: job.id, lastSteps: { [name]: buffer.lastStep }, at: Date.now(), how } }));
    }
    return drawn;
  }

  /** @param {boolean} visible */
  setVisible(visible) {
    this.visible = visible;
  }
}
