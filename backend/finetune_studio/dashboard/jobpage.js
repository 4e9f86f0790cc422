// @ts-check
/**
 * One job's page: header (state, step, epoch, speed, ETA, device; Cancel, Resume, Clone, Delete),
 * its error and hint when it failed, its anomalies, and the tabs Charts, Evaluation, Logs, Config.
 *
 * Lifecycle of `open(id)`: load the job, load its metric history and past anomalies, then follow its
 * SSE stream from the history's last seq. Stream events go into the JobFeed as they arrive; what they
 * changed is drawn once per animation frame (FrameScheduler). `close()` ends the stream and frees the
 * charts.
 */

import { AnomalyPanel } from "./anomalypanel.js";
import { ApiError } from "./api.js";
import { ChartPanel } from "./chartpanel.js";
import { purgeCharts } from "./charts.js";
import { showBatch } from "./batch.js";
import { EvalPanel } from "./evalpanel.js";
import { FINISHED_STATES, FrameScheduler, JobFeed, RESUMABLE_STATES } from "./feed.js";
import { formatDuration, formatValue, jobDuration, jobFraction } from "./format.js";
import { badge, h, replace } from "./html.js";
import { jobLayout } from "./layout.js";
import { LogPanel } from "./logpanel.js";
import { TABS } from "./route.js";
import { emptySeries } from "./series.js";
import { toToml } from "./specs.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").Stream} Stream */
/** @typedef {import("./feed.js").Job} Job */

/** Points per series asked from the server for history (it keeps each bucket's min and max). */
export const HISTORY_POINTS = 4000;

const TAB_TITLES = { charts: "Charts", evaluation: "Evaluation", logs: "Logs", config: "Config" };

export class JobPage {
  /**
   * @param {HTMLElement} root
   * @param {{api: Api, dialog: HTMLDialogElement, onJob: (job: Job) => void,
   *   onStreamStatus: (status: string, retryInMs: number) => void, onDeleted: (id: string) => void}} deps
   */
  constructor(root, deps) {
    this.root = root;
    this.deps = deps;
    /** @type {string|null} */
    this.id = null;
    this.tab = "charts";
    /** @type {JobFeed|null} */
    this.feed = null;
    /** @type {Stream|null} */
    this.stream = null;
    /** @type {ChartPanel|null} */
    this.charts = null;
    /** @type {LogPanel|null} */
    this.logs = null;
    /** @type {EvalPanel|null} */
    this.evaluation = null;
    /** @type {AnomalyPanel|null} */
    this.anomalyPanel = null;
    this.logsLoaded = false;
    this.evalsLoaded = false;
    /** @type {Record<string, HTMLElement>} */
    this.panels = {};
    this.frames = new FrameScheduler(() => this.drawFrame());
    /** Opening a second job while the first loads must not mix them: each open() gets a token. */
    this.opening = 0;
  }

  /**
   * @param {string} id
   * @param {string} tab
   * @param {number} [step] show that step's batch too (`#job=<id>&step=<step>`)
   */
  async open(id, tab, step) {
    if (id === this.id) {
      this.showTab(tab);
      if (step !== undefined && this.feed) this.openStep(step);
      return;
    }
    this.close();
    const token = ++this.opening;
    this.id = id;
    this.tab = tab;
    replace(this.root, h("div.empty", null, "Loading job…"));
    let job;
    try {
      job = await this.deps.api.job(id);
    } catch (error) {
      if (token !== this.opening) return;
      const e = /** @type {ApiError} */ (error);
      replace(this.root, h("div.empty.big", { id: "job-missing" }, h("h1", null, e.status === 404 ? "No such job" : "Could not load the job"),
        h("p", null, e.message), h("p", null, h("a", { href: "#" }, "Back to the job list"))));
      if (e.status !== 404) throw error;
      return;
    }
    if (token !== this.opening) return;
    const feed = new JobFeed(job);
    this.feed = feed;
    this.build();
    this.renderHeader();
    this.showTab(tab);
    const [metrics, anomalies] = await Promise.all([
      this.deps.api.metrics(id, { maxPoints: HISTORY_POINTS }), this.pastAnomalies(id)]);
    if (token !== this.opening) return;
    feed.setHistory(metrics);
    feed.setAnomalyHistory(anomalies);
    this.frames.request();
    if (step !== undefined) this.openStep(step);
    // Follow from where the history ends: nothing is missed and nothing replayed.
    const after = metrics.last_seq;
    this.stream = this.deps.api.streamJob(id, {
      onEvent: (event) => {
        if (feed.apply(event)) this.frames.request();
      },
      onStatus: (status, retryInMs) => this.deps.onStreamStatus(status, retryInMs),
    }, after);
  }

  /**
   * The job's anomalies so far; none, and a note on the page, when the server cannot say.
   * @param {string} id
   */
  async pastAnomalies(id) {
    try {
      return await this.deps.api.anomalies(id);
    } catch (error) {
      if (!(error instanceof ApiError) || error.unauthorized) throw error;
      if (this.id === id) this.anomalyPanel?.historyFailed(error.message);
      return [];
    }
  }

  /**
   * Show the batch of `step`, with the anomaly there if there is one.
   * @param {number} step
   */
  openStep(step) {
    const feed = this.feed;
    if (feed) showBatch(this.deps.dialog, this.deps.api, feed.job, step, feed.anomalies.at(step));
  }

  close() {
    this.opening++;
    this.stream?.close();
    this.stream = null;
    purgeCharts(this.root);
    this.feed = this.charts = this.logs = this.evaluation = this.anomalyPanel = null;
    this.logsLoaded = this.evalsLoaded = false;
    this.id = null;
    replace(this.root);
  }

  build() {
    const feed = /** @type {JobFeed} */ (this.feed);
    const id = feed.job.id;
    this.header = h("div.job-header", { id: "job-header" });
    this.errorBox = h("div.error-box", { id: "job-error", hidden: true });
    const anomalies = h("div.anomaly-area", { id: "anomalies" });
    const tabs = h("nav.tabs", { role: "tablist" }, TABS.map((t) =>
      h("a", { href: `#job=${encodeURIComponent(id)}${t === "charts" ? "" : `&tab=${t}`}`, "data-tab": t, role: "tab" },
        TAB_TITLES[/** @type {keyof typeof TAB_TITLES} */ (t)])));
    this.panels = Object.fromEntries(TABS.map((t) => [t, h("div.tab-panel", { id: `panel-${t}`, "data-tab": t, hidden: true })]));
    replace(this.root, this.header, this.errorBox, anomalies, tabs, Object.values(this.panels));
    this.anomalyPanel = new AnomalyPanel(anomalies, feed, (a) => this.openStep(a.step));
    this.charts = new ChartPanel(this.panels.charts, feed, {
      // an attached run's batches are not recorded: only its anomalies' markers open one
      onStepClick: (step) => {
        if (feed.job.kind === "managed" || feed.anomalies.at(step)) this.openStep(step);
      },
      requestDraw: () => this.frames.request(),
      loadRange: async (name, from, to, maxPoints) =>
        (await this.deps.api.metrics(id, { names: [name], fromStep: from, toStep: to, maxPoints })).series[name] ?? emptySeries(),
    });
    this.logs = new LogPanel(this.panels.logs, feed);
    this.evaluation = new EvalPanel(this.panels.evaluation, feed);
  }

  /** @param {string} tab */
  showTab(tab) {
    this.tab = TABS.includes(tab) ? tab : "charts";
    for (const [name, panel] of Object.entries(this.panels)) panel.hidden = name !== this.tab;
    for (const a of this.root.querySelectorAll(".tabs a")) {
      a.classList.toggle("current", /** @type {HTMLElement} */ (a).dataset.tab === this.tab);
      a.setAttribute("aria-selected", String(/** @type {HTMLElement} */ (a).dataset.tab === this.tab));
    }
    this.charts?.setVisible(this.tab === "charts");
    if (this.tab === "logs") this.loadLogs();
    if (this.tab === "evaluation") this.loadEvals();
    if (this.tab === "config") this.renderConfig();
    this.frames.request();
  }

  /** Log lines from before the stream, paged (the feed keeps the newest). */
  async loadLogs() {
    const feed = this.feed;
    if (!feed || this.logsLoaded) return;
    this.logsLoaded = true;
    let after = 0;
    for (;;) {
      const page = await this.deps.api.logs(feed.job.id, after, 10000);
      if (feed !== this.feed) return;
      feed.setLogHistory(page);
      if (page.length < 10000) break;
      after = page[page.length - 1].seq;
    }
    this.logs?.rerender();
  }

  /** The latest evaluation's details, which the history of scalar series does not hold. */
  async loadEvals() {
    const feed = this.feed;
    if (!feed || this.evalsLoaded) return;
    this.evalsLoaded = true;
    const latest = await this.deps.api.latestEval(feed.job.id);
    if (feed !== this.feed) return;
    if (latest) feed.setLatestEval(latest.data);
    await this.evaluation?.render();
  }

  async drawFrame() {
    const feed = this.feed;
    if (!feed) return;
    const changes = feed.takeChanges();
    if (changes.job) {
      this.renderHeader();
      this.deps.onJob(feed.job);
    }
    if (changes.series.size) this.charts?.markDirty(changes.series);
    if (changes.anomalies) {
      this.anomalyPanel?.render();
      this.charts?.anomaliesChanged();
    }
    const live = changes.liveAnomalies.at(-1);
    if (live) this.anomalyPanel?.notify(live);
    if (changes.logs && this.tab === "logs") this.logs?.update();
    if ((changes.evaluation || changes.series.size) && this.tab === "evaluation") await this.evaluation?.render();
    await this.charts?.draw();
    if (this.tab === "logs" && this.logs) this.logs.updateCount();
  }

  renderHeader() {
    const job = /** @type {JobFeed} */ (this.feed).job;
    const p = job.progress;
    const running = job.state === "running" || job.state === "cancelling";
    /** @param {string} id @param {string} label @param {string} value */
    const stat = (id, label, value) => h("div.stat", null, h("span.label", null, label), h("span.value", { id }, value));
    replace(/** @type {HTMLElement} */ (this.header),
      h("a.back", { href: "#" }, "← Jobs"),
      h("div.job-title", null, h("h1", { title: job.id }, job.name), h("span", { id: "job-state" }, badge(job.state)),
        job.kind === "attached" ? h("span.badge", { title: "a script reporting through StudioCallback" }, "attached") : null),
      this.actions(job),
      h("div.stats", null,
        stat("stat-step", "step", p.max_steps ? `${p.step} / ${p.max_steps}` : String(p.step)),
        stat("stat-epoch", "epoch", p.epoch ? p.epoch.toFixed(2) : "0"),
        stat("stat-speed", "samples/s", formatValue(p.samples_per_second)),
        stat("stat-eta", "ETA", running ? formatDuration(p.eta_seconds) : "–"),
        stat("stat-duration", "duration", formatDuration(jobDuration(job))),
        stat("stat-device", "device", job.device ?? "–"),
        job.attempt > 1 ? stat("stat-attempt", "attempt", String(job.attempt)) : null),
      h("div.progress", null, h("div", { style: `width: ${(jobFraction(job) * 100).toFixed(1)}%` })));
    const box = /** @type {HTMLElement} */ (this.errorBox);
    box.hidden = !job.error;
    if (job.error) {
      replace(box,
        h("div", null, h("span.error-type", null, job.error.type), ": ", h("span.error-message", null, job.error.message)),
        job.error.hint ? h("div.hint", null, "Hint: ", h("span.error-hint", null, job.error.hint)) : null);
    }
    if (this.tab === "config") this.renderConfig();
  }

  /** @param {Job} job */
  actions(job) {
    const api = this.deps.api;
    const note = h("span.job-meta.action-error", { id: "action-error", role: "alert" });
    /** @param {() => Promise<Job|null>} act */
    const run = (act) => async (/** @type {Event} */ e) => {
      const button = /** @type {HTMLButtonElement} */ (e.currentTarget);
      button.disabled = true;
      note.textContent = "";
      try {
        const updated = await act();
        if (updated && this.feed && updated.id === this.feed.job.id) {
          this.feed.job = updated;
          this.renderHeader();
          this.deps.onJob(updated);
        }
      } catch (error) {
        const err = /** @type {ApiError} */ (error);
        note.textContent = err.hint ? `${err.message} (${err.hint})` : err.message;
        button.disabled = false;
      }
    };
    const del = h("button.danger", { id: "btn-delete", type: "button", hidden: !FINISHED_STATES.has(job.state) });
    del.textContent = "Delete";
    del.addEventListener("click", run(async () => {
      if (!del.classList.contains("armed")) {
        del.classList.add("armed");
        del.textContent = "Delete: sure?";
        setTimeout(() => { del.classList.remove("armed"); del.textContent = "Delete"; }, 4000);
        return null;
      }
      await api.remove(job.id);
      this.deps.onDeleted(job.id);
      return null;
    }));
    return h("div.job-actions", null,
      h("button", { id: "btn-cancel", type: "button", hidden: !(job.state === "queued" || job.state === "running"),
        onclick: run(() => api.cancel(job.id)) }, "Cancel"),
      h("button", { id: "btn-resume", type: "button", hidden: !(job.kind === "managed" && RESUMABLE_STATES.has(job.state)),
        onclick: run(() => api.resume(job.id)) }, "Resume"),
      job.kind === "managed" ? h("a.button", { id: "btn-clone", href: `#new=${encodeURIComponent(job.id)}` }, "Clone as new job") : null,
      del, note);
  }

  /** A managed job's spec as finetune.toml; an attached run's TrainingArguments (it has no spec). */
  renderConfig() {
    const job = this.feed?.job;
    if (!job) return;
    /** @param {string} label @param {string} value @param {Record<string, string>} [attrs] */
    const row = (label, value, attrs = {}) => h("tr", null, h("th", null, label), h("td.mono", attrs, value));
    const args = Object.entries(job.training_args ?? {}).sort(([a], [b]) => a.localeCompare(b));
    const layout = job.spec ? jobLayout(job) : null;
    replace(this.panels.config,
      h("table", null, h("tbody", null,
        row("id", job.id), row("output folder", job.output_dir, { id: "output-dir" }), row("task", job.task))),
      layout
        ? [h("h2", null, "Workers and batch"), h("table", { id: "job-layout" }, h("tbody", null,
          row("executor", layout.executor, { id: "layout-executor" }),
          row("workers", layout.workers === null ? "as many as GPUs it gets" : String(layout.workers), { id: "layout-workers" }),
          row("where", layout.where, { id: "layout-where" }),
          row("batch per device", String(layout.batchSize), { id: "layout-batch" }),
          row("gradient accumulation", String(layout.accumulation), { id: "layout-accumulation" }),
          row("global batch", layout.globalBatch === null ? "–"
            : `${layout.globalBatch} (${layout.batchSize} × ${layout.workers} workers × ${layout.accumulation} accumulation)`,
          { id: "layout-global-batch" })))]
        : [],
      job.spec
        ? [h("h2", null, "Spec as submitted (finetune.toml)"), h("pre.toml", { id: "spec-toml" }, toToml(job.spec))]
        : [h("h2", null, "TrainingArguments of the script"),
          args.length
            ? h("table", { id: "training-args" }, h("tbody", null, args.map(([k, v]) =>
              row(k, pythonValue(v), { "data-arg": k }))))
            : h("div.empty", { id: "training-args" }, "The script reported no TrainingArguments.")]);
  }
}

/**
 * A TrainingArguments value as the script's author wrote it in Python.
 * @param {string|number|boolean|null} value
 */
function pythonValue(value) {
  if (value === null) return "None";
  if (typeof value === "boolean") return value ? "True" : "False";
  return String(value);
}
