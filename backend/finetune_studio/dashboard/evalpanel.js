// @ts-check
/**
 * The Evaluation tab: the latest eval figures, the confusion matrix as a heatmap with label names,
 * and per-class precision/recall/F1.
 */

import { drawConfusion } from "./charts.js";
import { formatValue, seriesTitle } from "./format.js";
import { h, replace } from "./html.js";

/** @typedef {import("./feed.js").JobFeed} JobFeed */

export class EvalPanel {
  /**
   * @param {HTMLElement} root
   * @param {JobFeed} feed
   */
  constructor(root, feed) {
    this.root = root;
    this.feed = feed;
  }

  async render() {
    const latest = this.latestValues();
    const ev = this.feed.evaluation;
    if (!latest.length && !ev) {
      replace(this.root, h("div.empty", { id: "eval-empty" },
        "No evaluation yet: it runs at the end of each epoch (or every eval_steps), as the job's eval_strategy says."));
      return;
    }
    const matrix = h("div", { id: "confusion-matrix" });
    replace(this.root,
      h("div.eval-grid", null,
        h("div", null,
          h("h2", null, `Latest evaluation${ev ? ` (step ${ev.step})` : ""}`),
          h("table", { id: "eval-values" }, h("tbody", null, latest.map(([name, value]) =>
            h("tr", null, h("th", null, seriesTitle(name).replace(" (eval)", "")), h("td.num", null, formatValue(value))))))),
        ev?.confusion_matrix ? h("div", null, h("h2", null, "Confusion matrix"), matrix) : null,
        ev?.per_class ? h("div", null, h("h2", null, "Per class"), this.perClass(ev.per_class)) : null),
      ev?.samples?.length ? h("div", null, h("h2", null, "Predictions of the latest evaluation"), this.samples(ev.samples)) : null);
    if (ev?.confusion_matrix) await drawConfusion(matrix, ev.confusion_matrix, ev.labels ?? []);
  }

  /** @returns {[string, number|null][]} the last value of every eval series */
  latestValues() {
    /** @type {[string, number|null][]} */
    const out = [];
    for (const [name, buffer] of this.feed.series) {
      if (!name.startsWith("eval/") || /runtime|per_second/.test(name) || !buffer.length) continue;
      out.push([name, buffer.data.value[buffer.length - 1]]);
    }
    return out.sort((a, b) => a[0].localeCompare(b[0]));
  }

  /** @param {{input: string, prediction: string, reference: string}[]} samples */
  samples(samples) {
    return h("table", { id: "eval-samples" },
      h("thead", null, h("tr", null, ["input", "prediction", "reference"].map((t) => h("th", null, t)))),
      h("tbody", null, samples.map((s) => h(`tr${s.prediction === s.reference ? "" : ".wrong"}`, null,
        h("td.text", null, s.input), h("td", null, s.prediction), h("td", null, s.reference)))));
  }

  /** @param {Record<string, {precision: number, recall: number, f1: number, support: number}>} perClass */
  perClass(perClass) {
    return h("table", { id: "per-class" },
      h("thead", null, h("tr", null, ["label", "precision", "recall", "F1", "support"].map((t) => h("th", null, t)))),
      h("tbody", null, Object.entries(perClass).map(([label, m]) => h("tr", null,
        h("td", null, label), h("td.num", null, formatValue(m.precision)), h("td.num", null, formatValue(m.recall)),
        h("td.num", null, formatValue(m.f1)), h("td.num", null, String(m.support))))));
  }
}
