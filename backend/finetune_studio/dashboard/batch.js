// @ts-check
/**
 * The dialog that shows the training examples behind one step (from a click on the train loss or on
 * an anomaly's marker, or `#job=<id>&step=<step>`): text, label and token length, longest first: the
 * way to find the data behind a loss spike. At an anomaly's step it first says what fired, the batch's
 * training rows and where the batch was saved. An attached run's batches are not recorded: its dialog
 * has the anomaly's rows only.
 */

import { describe, rowsText } from "./anomalies.js";
import { h, replace } from "./html.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./anomalies.js").Anomaly} Anomaly */
/** @typedef {{index: number, text: string, label: string|null, tokens: number}} BatchExample */

/**
 * @param {HTMLDialogElement} dialog
 * @param {Api} api
 * @param {{id: string, kind: string}} job
 * @param {number} step
 * @param {Anomaly|null} [anomaly] the anomaly at that step, if any
 */
export async function showBatch(dialog, api, job, step, anomaly = null) {
  const close = h("button", { type: "button", onclick: () => dialog.close() }, "Close");
  const body = h("div", { id: "batch-body" }, "Loading…");
  replace(dialog, h("div.dialog-head", null, h("h1", { id: "batch-title" }, `Batch of step ${step}`), close),
    anomaly ? anomalyBox(anomaly) : null, body);
  dialog.dataset.step = String(step);
  if (!dialog.open) dialog.showModal();
  if (job.kind !== "managed") {
    replace(body, h("div.empty", { id: "batch-unrecorded" },
      "This run reports from its own script: its batches are not recorded here, so only the rows an anomaly " +
      "names are known."));
    return;
  }
  try {
    const batch = await api.batch(job.id, step);
    if (dialog.dataset.step !== String(step)) return; // another step was opened meanwhile
    const flagged = new Set(anomaly?.rows ?? []);
    /** @type {BatchExample[]} */
    const examples = [...batch.examples].sort((a, b) => b.tokens - a.tokens);
    replace(body, h("table", { id: "batch-table" },
      h("thead", null, h("tr", null, h("th", null, "row"), h("th", null, "text"), h("th", null, "label"), h("th", null, "tokens"))),
      h("tbody", null, examples.map((e) => h(flagged.has(e.index) ? "tr.flagged" : "tr", null,
        h("td.num", null, String(e.index)), h("td.text", null, e.text), h("td", null, e.label ?? "–"),
        h("td.num", null, String(e.tokens)))))));
  } catch (error) {
    const e = /** @type {import("./api.js").ApiError} */ (error);
    replace(body, h("div.error-box", null, h("div", null, e.message), e.hint ? h("div.hint", null, e.hint) : null));
  }
}

/** @param {Anomaly} a */
function anomalyBox(a) {
  return h("div.anomaly-box", { id: "batch-anomaly", "data-kind": a.kind },
    h("div.anomaly-what", null, describe(a)),
    h("div", null, "Training rows: ", h("span.mono", { id: "batch-anomaly-rows" }, rowsText(a.rows, 64))),
    a.saved_to
      ? h("div", null, "Batch saved to ", h("code", { id: "batch-anomaly-saved" }, a.saved_to),
        " (torch.load it to get the batch's tensors back)")
      : null);
}
