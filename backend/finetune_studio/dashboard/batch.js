// @ts-check
/**
 * The dialog that shows the training examples behind one step (from a click on the train loss):
 * text, label and token length, longest first: the way to find the data behind a loss spike.
 */

import { h, replace } from "./html.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {{index: number, text: string, label: string|null, tokens: number}} BatchExample */

/**
 * @param {HTMLDialogElement} dialog
 * @param {Api} api
 * @param {string} jobId
 * @param {number} step
 */
export async function showBatch(dialog, api, jobId, step) {
  const close = h("button", { type: "button", onclick: () => dialog.close() }, "Close");
  const body = h("div", { id: "batch-body" }, "Loading…");
  replace(dialog, h("div.dialog-head", null, h("h1", { id: "batch-title" }, `Batch of step ${step}`), close), body);
  if (!dialog.open) dialog.showModal();
  try {
    const batch = await api.batch(jobId, step);
    /** @type {BatchExample[]} */
    const examples = [...batch.examples].sort((a, b) => b.tokens - a.tokens);
    replace(body, h("table", { id: "batch-table" },
      h("thead", null, h("tr", null, h("th", null, "row"), h("th", null, "text"), h("th", null, "label"), h("th", null, "tokens"))),
      h("tbody", null, examples.map((e) => h("tr", null,
        h("td.num", null, String(e.index)), h("td.text", null, e.text), h("td", null, e.label ?? "–"),
        h("td.num", null, String(e.tokens)))))));
  } catch (error) {
    const e = /** @type {import("./api.js").ApiError} */ (error);
    replace(body, h("div.error-box", null, h("div", null, e.message), e.hint ? h("div.hint", null, e.hint) : null));
  }
}
