// @ts-check
/**
 * The job list in the sidebar: newest first, filtered by state, kept live by the global stream's
 * `state` events (each carries the whole Job, progress included).
 */

import { formatDuration, formatTime, formatValue, headlineMetric, jobDuration, jobFraction, seriesTitle } from "./format.js";
import { badge, h, replace } from "./html.js";

/** @typedef {import("./feed.js").Job} Job */

export class JobList {
  /**
   * @param {{list: HTMLElement, empty: HTMLElement, loading: HTMLElement, filter: HTMLSelectElement}} els
   */
  constructor(els) {
    this.els = els;
    /** @type {Map<string, Job>} */
    this.jobs = new Map();
    /** @type {string|null} */
    this.activeId = null;
    this.loaded = false;
    els.filter.addEventListener("change", () => this.render());
  }

  /** @param {Job[]} jobs the whole list, as `GET /api/jobs` gives it */
  setAll(jobs) {
    this.jobs = new Map(jobs.map((j) => [j.id, j]));
    this.loaded = true;
    this.render();
  }

  /** @param {Job} job a `state` event's snapshot */
  upsert(job) {
    const old = this.jobs.get(job.id);
    this.jobs.set(job.id, job);
    const item = this.els.list.querySelector(`[data-job-id="${CSS.escape(job.id)}"]`);
    if (item && old && old.state === job.state) item.replaceWith(this.item(job));
    else this.render();
  }

  /** @param {string} id */
  remove(id) {
    this.jobs.delete(id);
    this.render();
  }

  /** Newest first. @returns {Job[]} */
  sorted() {
    return [...this.jobs.values()].sort((a, b) => b.created_at - a.created_at);
  }

  /** @param {string|null} id */
  setActive(id) {
    this.activeId = id;
    for (const li of this.els.list.querySelectorAll(".job-item")) {
      li.classList.toggle("active", /** @type {HTMLElement} */ (li).dataset.jobId === id);
    }
  }

  render() {
    const wanted = this.els.filter.value;
    const jobs = this.sorted().filter((j) =>
      !wanted || (wanted === "active" ? j.state === "queued" || j.state === "running" : j.state === wanted));
    replace(this.els.list, jobs.map((j) => this.item(j)));
    this.els.loading.hidden = this.loaded;
    this.els.empty.hidden = !this.loaded || this.jobs.size > 0;
    if (this.loaded && this.jobs.size > 0 && jobs.length === 0) {
      this.els.list.appendChild(h("li.empty", null, `No ${wanted} jobs.`));
    }
  }

  /** @param {Job} job */
  item(job) {
    const p = job.progress;
    const best = headlineMetric(job.best_metric);
    return h(`li.job-item${job.id === this.activeId ? ".active" : ""}`, { "data-job-id": job.id, "data-state": job.state },
      h("a", { href: `#job=${encodeURIComponent(job.id)}`, title: `${job.name} (${job.id})` },
        h("div.job-row", null, h("span.job-name", null, job.name), badge(job.state)),
        h("div.job-meta", null, job.task, best ? ` · ${seriesTitle(best[0]).replace(" (eval)", "")} ${formatValue(best[1])}` : ""),
        h("div.progress", { title: p.max_steps ? `step ${p.step} of ${p.max_steps}` : "" },
          h("div", { style: `width: ${(jobFraction(job) * 100).toFixed(1)}%` })),
        h("div.job-meta", null, job.started_at
          ? `started ${formatTime(job.started_at)} · ${formatDuration(jobDuration(job))}`
          : `queued ${formatTime(job.created_at)}`)),
    );
  }
}
