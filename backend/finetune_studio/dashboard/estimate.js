// @ts-check
/**
 * "Will it fit?": the new-job form asks POST /api/estimate as the user edits (debounced, the latest answer
 * wins) and shows memory against the device, the largest batch that fits, time per epoch, and, when it
 * will not fit, the warning and the setting that would make it fit.
 */

import { h, replace } from "./html.js";

/** @typedef {import("./api.js").Api} Api */
/**
 * @typedef {{weights: number, gradients: number, optimizer: number, activations: number, evaluation: number, runtime: number, total: number}} MemoryEstimate
 * @typedef {{name: string, kind: string, index: number|null, memory: number, fits: boolean, max_batch_size: number}} DeviceFit
 * @typedef {{architecture: string, parameters: number, trainable_parameters: number, precision: string,
 *   batch_size: number, sequence_length: number, memory: MemoryEstimate, devices: DeviceFit[], fits: boolean,
 *   max_batch_size: number, examples: number|null, tokens_per_epoch: number|null, steps_per_epoch: number|null,
 *   seconds_per_epoch: number|null, seconds_total: number|null, warning: string|null, suggestion: string|null,
 *   suggested: Record<string, any>, notes: string[]}} Estimate
 */

export const DEBOUNCE_MS = 400;

/** @param {number} bytes */
export function formatBytes(bytes) {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

/** @param {number} n */
export function formatCount(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
}

/** @param {number} s */
export function formatSeconds(s) {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export class EstimatePanel {
  /** @param {Api} api */
  constructor(api) {
    this.api = api;
    this.root = h("section.estimate", { id: "estimate", "aria-live": "polite" }, h("div.empty", null, "Estimate: fill in the model and the data."));
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.timer = undefined;
    this.asked = 0;
  }

  /** Ask again after the user stops typing. @param {() => any} spec */
  update(spec) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.ask(spec()), DEBOUNCE_MS);
  }

  /** @param {any} spec */
  async ask(spec) {
    const asked = ++this.asked;
    if (!spec?.model || !spec?.data?.train) return;
    this.root.classList.add("busy");
    try {
      /** @type {Estimate} */
      const estimate = await this.api.request("POST", "/api/estimate", spec);
      if (asked === this.asked) this.render(estimate);
    } catch (error) {
      if (asked === this.asked) replace(this.root, h("div.empty", null, `Estimate: ${error instanceof Error ? error.message : error}`));
    } finally {
      if (asked === this.asked) this.root.classList.remove("busy");
    }
  }

  /** @param {Estimate} e */
  render(e) {
    const device = e.devices[0];
    const m = e.memory;
    // the peak is weights + optimizer + runtime + the larger of (gradients + activations) and evaluation
    const parts = /** @type {const} */ (["weights", "gradients", "optimizer", "activations", "evaluation", "runtime"]).filter((p) => p !== "evaluation" || m.evaluation > 0);
    replace(this.root,
      h("div.estimate-head", null,
        h("strong", { id: "estimate-verdict", class: e.fits ? "fits" : "no-fit" }, e.fits ? "Fits" : "Will not fit"),
        ` ${formatBytes(m.total)} of ${formatBytes(device.memory)} on ${device.name} · ${e.architecture}, `,
        `${formatCount(e.trainable_parameters)} of ${formatCount(e.parameters)} parameters train · ${e.precision}`),
      h("div.estimate-parts", null, parts.map((p) => h("span", { title: p }, `${p} ${formatBytes(m[p])}`))),
      h("div", null, `largest batch that fits: ${e.max_batch_size || "none"} · longest example ${e.sequence_length} tokens`,
        e.seconds_per_epoch != null ? ` · about ${formatSeconds(e.seconds_per_epoch)} per epoch (${e.steps_per_epoch} steps, ${formatCount(e.tokens_per_epoch ?? 0)} tokens)` : ""),
      e.warning ? h("div.estimate-warning", { id: "estimate-warning", role: "alert" }, e.warning) : null,
      e.suggestion ? h("div.estimate-suggestion", { id: "estimate-suggestion" }, `Try: ${e.suggestion}`) : null,
      e.notes.length ? h("ul.estimate-notes", null, e.notes.map((n) => h("li", null, n))) : null);
  }
}
