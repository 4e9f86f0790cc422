// @ts-check
/**
 * What changed between two runs (GET /api/jobs/{a}/lineage/diff/{b}): the spec, the code (a unified diff
 * per file) and the data and environment, for Compare. And what changed since a run in the working tree
 * (GET /api/jobs/{id}/lineage/worktree), for "Clone as new job".
 */

import { h, replace } from "./html.js";

/** @typedef {import("./api.js").Api} Api */
/**
 * @typedef {{key: string, a: any, b: any}} ValueChange
 * @typedef {{path: string, diff: string}} FileChange
 * @typedef {{row: number, a: string|null, b: string|null}} RowChange
 * @typedef {{field: string, a: any, b: any, changed_rows: number[], added_rows: number, removed_rows: number, rows: RowChange[], note: string|null}} DataChange
 * @typedef {{a: string, b: string, spec: ValueChange[], code: FileChange[], code_note: string|null, data: DataChange[], environment: ValueChange[]}} LineageDiff
 * @typedef {{job_id: string, matches: boolean|null, folder: string|null, repository: string|null, commit_then: string|null,
 *   commit_now: string|null, changed_files: FileChange[], data_changed: DataChange[], note: string|null}} WorktreeCheck
 */

/** @param {any} v */
const show = (v) => (v === undefined || v === null ? "–" : typeof v === "string" ? v : JSON.stringify(v));

/** @param {ValueChange[]} changes */
function valueTable(changes) {
  return h("table.diff", null, h("thead", null, h("tr", null, h("th", null, "key"), h("th", null, "a"), h("th", null, "b"))),
    h("tbody", null, changes.map((c) => h("tr", null, h("td.mono", null, c.key), h("td.mono", null, show(c.a)), h("td.mono", null, show(c.b))))));
}

/** @param {string} text */
function diffBlock(text) {
  return h("pre.code-diff", null, text.split("\n").map((line) =>
    h(line.startsWith("+") && !line.startsWith("+++") ? "span.added" : line.startsWith("-") && !line.startsWith("---") ? "span.removed" : "span",
      null, `${line}\n`)));
}

/** @param {DataChange} d */
function dataChange(d) {
  const rows = [d.changed_rows.length ? `rows changed: ${d.changed_rows.slice(0, 20).join(", ")}${d.changed_rows.length > 20 ? "…" : ""}` : "",
    d.added_rows ? `${d.added_rows} added` : "", d.removed_rows ? `${d.removed_rows} removed` : ""].filter(Boolean).join(" · ");
  return h("div.data-change", null,
    h("div", null, h("span.mono", null, d.field), ` ${d.b?.path ?? d.a?.path ?? ""}: ${rows || "file changed"}`),
    d.note ? h("div.hint", null, d.note) : null,
    d.rows.length ? h("table.diff", null, h("tbody", null, d.rows.map((r) => h("tr", null, h("td.mono", null, `row ${r.row}`),
      h("td.mono", null, show(r.a)), h("td.mono", null, show(r.b)))))) : null);
}

/** @param {LineageDiff} diff */
export function renderLineageDiff(diff) {
  const part = (/** @type {string} */ title, /** @type {string} */ id, /** @type {any} */ body) => h("section.lineage-part", { id }, h("h3", null, title), body);
  const none = (/** @type {string} */ text) => h("div.empty", null, text);
  return h("div.lineage-diff", null,
    part("Spec", "lineage-spec", diff.spec.length ? valueTable(diff.spec) : none("The specs are identical.")),
    part("Code", "lineage-code", diff.code.length
      ? diff.code.map((f) => h("div", null, h("div.mono", null, f.path), diffBlock(f.diff)))
      : none(diff.code_note ?? "No code changed.")),
    part("Data and environment", "lineage-data", h("div", null,
      diff.data.length ? diff.data.map(dataChange) : none("The data files are identical."),
      diff.environment.length ? valueTable(diff.environment) : none("The same library versions."))));
}

/**
 * Fills `root` with the lineage diff of the first two jobs (a: the first, b: the second).
 * @param {HTMLElement} root
 * @param {Api} api
 * @param {string[]} ids
 */
export async function showLineageDiff(root, api, ids) {
  if (ids.length < 2) {
    replace(root);
    return;
  }
  try {
    /** @type {LineageDiff} */
    const diff = await api.request("GET", `/api/jobs/${encodeURIComponent(ids[0])}/lineage/diff/${encodeURIComponent(ids[1])}`);
    replace(root, h("h2", null, "What changed"), renderLineageDiff(diff));
  } catch (error) {
    replace(root, h("h2", null, "What changed"), h("div.empty", null, error instanceof Error ? error.message : String(error)));
  }
}

/** @param {WorktreeCheck} check */
export function renderWorktree(check) {
  const verdict = check.matches === true
    ? `The working tree matches the run's lineage: commit ${check.commit_now?.slice(0, 10)}, the same files under ${check.folder}, the same data.`
    : check.matches === false ? "The working tree differs from the run's lineage:" : "Cannot tell whether the working tree matches the run's lineage.";
  const commit = check.commit_then !== check.commit_now && check.commit_then
    ? h("div", null, `commit ${check.commit_then.slice(0, 10)} then, ${check.commit_now?.slice(0, 10) ?? "none"} now`) : null;
  return h("div", null,
    h("div", { id: "worktree-verdict", class: check.matches === true ? "matches" : check.matches === false ? "differs" : "unknown" }, verdict),
    commit,
    check.note ? h("div.hint", null, check.note) : null,
    check.changed_files.length ? h("div", { id: "worktree-files" }, `Files changed since: ${check.changed_files.map((f) => f.path).join(", ")}`,
      check.changed_files.map((f) => h("details", null, h("summary.mono", null, f.path), diffBlock(f.diff)))) : null,
    check.data_changed.length ? h("div", { id: "worktree-data" }, "Data changed since:", check.data_changed.map(dataChange)) : null);
}

/**
 * Fills `root` with whether the working tree still holds what run `id` came from.
 * @param {HTMLElement} root
 * @param {Api} api
 * @param {string} id
 */
export async function showWorktree(root, api, id) {
  try {
    /** @type {WorktreeCheck} */
    const check = await api.request("GET", `/api/jobs/${encodeURIComponent(id)}/lineage/worktree`);
    replace(root, renderWorktree(check));
  } catch (error) {
    replace(root, h("div.empty", null, `Cannot check the working tree: ${error instanceof Error ? error.message : String(error)}`));
  }
}
