// @ts-check
/**
 * A job's anomalies on its page, under the header: a notice when one arrives live (with *Open batch*),
 * and the list of all of them, each with where its batch was saved and *Open batch*. Hidden while the
 * job has none.
 */

import { describe, rowsText } from "./anomalies.js";
import { h, replace } from "./html.js";

/** @typedef {import("./anomalies.js").Anomaly} Anomaly */
/** @typedef {import("./feed.js").JobFeed} JobFeed */

/** Rows of the list; older anomalies are counted, not listed (the chart still marks them). */
const LISTED = 50;

export class AnomalyPanel {
  /**
   * @param {HTMLElement} root
   * @param {JobFeed} feed
   * @param {(anomaly: Anomaly) => void} open show the anomaly's batch
   */
  constructor(root, feed, open) {
    this.root = root;
    this.feed = feed;
    this.open = open;
    this.notice = h("div.anomaly-notice", { id: "anomaly-notice", role: "alert", hidden: true });
    this.summary = h("summary", { id: "anomaly-summary" });
    this.list = h("ul.anomaly-list", { id: "anomaly-list" });
    this.details = h("details.anomalies", null, this.summary, this.list);
    this.failure = h("div.job-meta", { id: "anomaly-history-error", hidden: true });
    replace(root, this.notice, this.details, this.failure);
    root.hidden = true;
    /** the list opens by itself the first time, when short */
    this.rendered = false;
  }

  render() {
    const items = this.feed.anomalies.items;
    this.root.hidden = items.length === 0 && this.failure.hidden;
    this.details.hidden = items.length === 0;
    if (!items.length) return;
    if (!this.rendered && items.length <= 5) this.details.setAttribute("open", "");
    this.rendered = true;
    const last = items[items.length - 1];
    this.summary.textContent = `${items.length} ${items.length === 1 ? "anomaly" : "anomalies"}; ` +
      `the last at step ${last.step}`;
    const newest = items.slice(-LISTED).reverse();
    replace(this.list, newest.map((a) => h("li.anomaly", { "data-step": String(a.step), "data-kind": a.kind },
      h("div.anomaly-text", null, h("div.anomaly-what", null, describe(a)),
        a.saved_to ? h("div.anomaly-saved", null, "Batch saved to ", h("code", null, a.saved_to)) : null),
      this.button(a))),
    items.length > LISTED ? h("li.muted", null, `… and ${items.length - LISTED} earlier ones, marked on the loss chart`) : null);
  }

  /**
   * A new anomaly arrived on the stream: say so until dismissed or replaced by the next.
   * @param {Anomaly} a
   */
  notify(a) {
    this.root.hidden = false;
    this.notice.hidden = false;
    this.notice.dataset.step = String(a.step);
    const dismiss = h("button", { id: "anomaly-dismiss", type: "button", onclick: () => { this.notice.hidden = true; } }, "Dismiss");
    replace(this.notice,
      h("div.anomaly-what", null, h("strong", null, describe(a))),
      h("div", null, "Training rows: ", h("span.mono", null, rowsText(a.rows))),
      a.saved_to ? h("div", null, "Batch saved to ", h("code", { id: "anomaly-saved" }, a.saved_to)) : null,
      h("div.anomaly-actions", null, this.button(a, "anomaly-open"), dismiss));
  }

  /**
   * Past anomalies could not be loaded: say so (the stream still brings new ones).
   * @param {string} message
   */
  historyFailed(message) {
    this.failure.hidden = false;
    this.failure.textContent = `Past anomalies could not be loaded: ${message}`;
    this.root.hidden = false;
  }

  /**
   * @param {Anomaly} a
   * @param {string} [id]
   */
  button(a, id) {
    return h("button.open-batch", { type: "button", id, "data-step": String(a.step), onclick: () => this.open(a) }, "Open batch");
  }
}
