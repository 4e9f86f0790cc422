// @ts-check
/**
 * Compare: pick jobs, overlay one metric of each in its own colour with a legend, and see how their
 * specs differ. History only (a Refresh button reloads); following many streams at once is not worth
 * the connections.
 */

import { drawCompare } from "./charts.js";
import { seriesTitle } from "./format.js";
import { badge, h, replace } from "./html.js";
import { showLineageDiff } from "./lineage.js";
import { chartOrder, emptySeries, MAX_SMOOTHING } from "./series.js";
import { diffSpecs, jobSettings } from "./specs.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./feed.js").Job} Job */
/** @typedef {import("./series.js").SeriesData} SeriesData */

export class ComparePage {
  /**
   * @param {HTMLElement} root
   * @param {{api: Api, jobs: () => Job[]}} deps
   */
  constructor(root, deps) {
    this.root = root;
    this.deps = deps;
    /** @type {string[]} */
    this.ids = [];
    this.metric = "train/loss";
    this.smoothing = 0;
    this.yLog = false;
    this.revision = 1;
    /** @type {Map<string, Record<string, SeriesData>>} */
    this.cache = new Map();
  }

  /** @param {string[]} ids */
  async show(ids) {
    this.ids = ids;
    await this.render();
  }

  /** @param {string[]} ids */
  setIds(ids) {
    this.ids = ids;
    history.replaceState(null, "", `#compare=${ids.map(encodeURIComponent).join(",")}`);
    this.render();
  }

  async render() {
    const jobs = this.deps.jobs();
    const byId = new Map(jobs.map((j) => [j.id, j]));
    const picked = this.ids.filter((id) => byId.has(id));
    const picker = h("ul.compare-pick", { id: "compare-pick" }, jobs.map((j) => {
      const box = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", value: j.id, checked: picked.includes(j.id) }));
      box.addEventListener("change", () => {
        const next = box.checked ? [...this.ids, j.id] : this.ids.filter((id) => id !== j.id);
        this.setIds(next);
      });
      return h("li", null, h("label", null, box, h("span.job-name", null, j.name), badge(j.state)));
    }));
    const chart = h("div", { id: "compare-chart" });
    const diff = h("div", { id: "spec-diff" });
    const lineage = h("div", { id: "lineage-diff" });  // issue 16: spec, code, data and environment of two runs
    const metricSelect = /** @type {HTMLSelectElement} */ (h("select", { id: "compare-metric", "aria-label": "metric" }));
    const controls = h("div.toolbar", null,
      h("label", null, "Metric", metricSelect),
      this.smoothingControl(),
      this.scaleControl(),
      h("button", { type: "button", id: "compare-refresh", onclick: () => { this.cache.clear(); this.render(); } }, "Refresh"));
    replace(this.root,
      h("h1", null, "Compare jobs"),
      h("div.compare-grid", null,
        h("div", null, h("h2", null, "Jobs"), jobs.length ? picker : h("div.empty", null, "No jobs yet.")),
        h("div", null, controls,
          picked.length ? chart : h("div.empty", { id: "compare-empty" }, "Tick two or more jobs to overlay their curves."),
          h("h2", null, "Spec differences"), diff, lineage)));
    this.renderDiff(diff, picked.map((id) => /** @type {Job} */ (byId.get(id))));
    const lineageShown = showLineageDiff(lineage, this.deps.api, picked);  // git and hashes: beside the curves, not after

    const series = await Promise.all(picked.map((id) => this.load(id)));
    const names = chartOrder([...new Set(series.flatMap((s) => Object.keys(s)))]);
    if (names.length && !names.includes(this.metric)) this.metric = names[0];
    replace(metricSelect, names.map((n) => h("option", { value: n, selected: n === this.metric }, n)));
    metricSelect.addEventListener("change", () => {
      this.metric = metricSelect.value;
      this.revision++;
      this.render();
    });
    if (picked.length) {
      const lines = picked.map((id, i) => {
        const job = /** @type {Job} */ (byId.get(id));
        return { name: `${job.name} (${id.slice(0, 8)})`, series: series[i][this.metric] ?? emptySeries(),
          origin: job.started_at ?? job.created_at };
      });
      await drawCompare(chart, lines, { title: seriesTitle(this.metric), smoothing: this.smoothing, yLog: this.yLog,
        xMode: "step", revision: this.revision });
    }
    await lineageShown;
  }

  /** @param {string} id */
  async load(id) {
    let s = this.cache.get(id);
    if (!s) {
      s = (await this.deps.api.metrics(id, { maxPoints: 2000 })).series;
      this.cache.set(id, s);
    }
    return s;
  }

  smoothingControl() {
    const out = h("output", null, this.smoothing.toFixed(2));
    const slider = /** @type {HTMLInputElement} */ (h("input", { type: "range", min: "0", max: String(Math.min(0.99, MAX_SMOOTHING)),
      step: "0.01", value: String(this.smoothing), id: "compare-smoothing", "aria-label": "smoothing" }));
    slider.addEventListener("change", () => {
      this.smoothing = Number(slider.value);
      this.render();
    });
    slider.addEventListener("input", () => { out.textContent = Number(slider.value).toFixed(2); });
    return h("label", null, "Smoothing", slider, out);
  }

  scaleControl() {
    const select = /** @type {HTMLSelectElement} */ (h("select", { id: "compare-y-scale", "aria-label": "y axis" },
      h("option", { value: "linear", selected: !this.yLog }, "linear"), h("option", { value: "log", selected: this.yLog }, "log")));
    select.addEventListener("change", () => {
      this.yLog = select.value === "log";
      this.render();
    });
    return h("label", null, "Y", select);
  }

  /**
   * @param {HTMLElement} root
   * @param {Job[]} jobs
   */
  renderDiff(root, jobs) {
    if (jobs.length < 2) {
      replace(root, h("div.empty", null, "Pick two jobs to see how their specs differ."));
      return;
    }
    const rows = diffSpecs(jobs.map(jobSettings));
    /** @param {any} v */
    const show = (v) => (v === undefined ? "–" : typeof v === "string" ? v : JSON.stringify(v));
    replace(root, rows.length
      ? h("table.diff", null,
        h("thead", null, h("tr", null, h("th", null, "key"), jobs.map((j) => h("th", null, j.name)))),
        h("tbody", null, rows.map((r) => h("tr", null, h("td.mono", null, r.key), r.values.map((v) => h("td.mono", null, show(v)))))))
      : h("div.empty", null, "The specs are identical."));
  }
}
