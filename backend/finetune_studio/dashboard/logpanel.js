// @ts-check
/**
 * The Logs tab: the job's stdout and stderr, following live (while scrolled to the bottom), searchable,
 * with errors highlighted. Only the lines the feed keeps are in the DOM.
 */

import { h, replace } from "./html.js";

/** @typedef {import("./feed.js").JobFeed} JobFeed */
/** @typedef {import("./feed.js").LogLine} LogLine */

const ERROR_LINE = /\b(error|exception|traceback|fatal|killed|out of memory)\b|^\s*File ".*", line \d+/i;

/** @param {LogLine} line */
export function isErrorLine(line) {
  return ERROR_LINE.test(line.text);
}

export class LogPanel {
  /**
   * @param {HTMLElement} root
   * @param {JobFeed} feed
   */
  constructor(root, feed) {
    this.root = root;
    this.feed = feed;
    this.query = "";
    this.lastSeq = 0;
    this.search = /** @type {HTMLInputElement} */ (h("input", { id: "log-search", type: "search", placeholder: "search the log", "aria-label": "search the log" }));
    this.search.addEventListener("input", () => {
      this.query = this.search.value.trim().toLowerCase();
      this.rerender();
    });
    this.errorsOnly = /** @type {HTMLInputElement} */ (h("input", { id: "log-errors", type: "checkbox" }));
    this.errorsOnly.addEventListener("change", () => this.rerender());
    this.count = h("span.job-meta", { id: "log-count" });
    this.view = h("div.log-view", { id: "log-view", tabindex: "0", "aria-live": "off" });
    replace(root,
      h("div.log-tools", null, this.search, h("label", null, this.errorsOnly, " errors only"), this.count),
      this.view);
  }

  /** @param {LogLine} line */
  matches(line) {
    if (this.errorsOnly.checked && !isErrorLine(line)) return false;
    return !this.query || line.text.toLowerCase().includes(this.query);
  }

  /** @param {LogLine} line */
  lineNode(line) {
    const cls = isErrorLine(line) ? "error" : line.stream;
    const node = h(`span.log-line.${cls}`, { "data-seq": line.seq });
    if (this.query) {
      const lower = line.text.toLowerCase();
      let at = 0;
      for (let i = lower.indexOf(this.query); i >= 0; i = lower.indexOf(this.query, at)) {
        node.append(line.text.slice(at, i), h("mark", null, line.text.slice(i, i + this.query.length)));
        at = i + this.query.length;
      }
      node.append(line.text.slice(at));
    } else {
      node.textContent = line.text;
    }
    return node;
  }

  atBottom() {
    const v = this.view;
    return v.scrollHeight - v.scrollTop - v.clientHeight < 24;
  }

  rerender() {
    replace(this.view, this.feed.logs.filter((l) => this.matches(l)).map((l) => this.lineNode(l)));
    this.lastSeq = this.feed.logs.at(-1)?.seq ?? 0;
    this.view.scrollTop = this.view.scrollHeight;
    this.updateCount();
  }

  /** Append the lines that arrived since the last call; drop those the feed no longer keeps. */
  update() {
    const follow = this.atBottom();
    const first = this.feed.logs[0]?.seq ?? Infinity;
    while (this.view.firstElementChild && Number(/** @type {HTMLElement} */ (this.view.firstElementChild).dataset.seq) < first) {
      this.view.firstElementChild.remove();
    }
    const fresh = [];
    for (let i = this.feed.logs.length - 1; i >= 0 && this.feed.logs[i].seq > this.lastSeq; i--) fresh.push(this.feed.logs[i]);
    fresh.reverse();
    if (fresh.length && fresh[0].seq < this.lastSeq) return this.rerender();
    this.view.append(...fresh.filter((l) => this.matches(l)).map((l) => this.lineNode(l)));
    if (fresh.length) this.lastSeq = fresh[fresh.length - 1].seq;
    if (follow) this.view.scrollTop = this.view.scrollHeight;
    this.updateCount();
  }

  updateCount() {
    const shown = this.view.childElementCount;
    const dropped = this.feed.logsDropped ? ` (${this.feed.logsDropped.toLocaleString()} older lines not kept here)` : "";
    this.count.textContent = `${shown.toLocaleString()} of ${this.feed.logs.length.toLocaleString()} lines${dropped}`;
  }
}
