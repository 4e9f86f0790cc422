// @ts-check
/**
 * The location hash is the page's state, so that links (and the plugin) can open any view:
 * `#job=<id>[&tab=charts|evaluation|logs|config][&step=<step>]` (with a step, that step's batch is shown:
 * the plugin's *Open batch* of an anomaly), `#compare=<id>,<id>`, `#new[=<id to clone>]`, `#tensors`,
 * `#tensor=<id>`; anything else is the job list. Pure.
 */

/**
 * @typedef {{view: "home"}
 *   | {view: "job", id: string, tab: string, step?: number}
 *   | {view: "compare", ids: string[]}
 *   | {view: "new", clone: string|null}
 *   | {view: "tensors", id: string|null}} Route
 */

export const TABS = ["charts", "evaluation", "logs", "config"];

/**
 * @param {string} hash location.hash, with or without "#"
 * @returns {Route}
 */
export function parseRoute(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const job = params.get("job");
  if (job) {
    const tab = params.get("tab") ?? "charts";
    const step = params.get("step");
    return { view: "job", id: job, tab: TABS.includes(tab) ? tab : "charts",
      ...(step && /^[0-9]{1,15}$/.test(step) ? { step: Number(step) } : {}) };
  }
  if (params.has("compare")) {
    const ids = (params.get("compare") ?? "").split(",").filter(Boolean);
    return { view: "compare", ids: [...new Set(ids)] };
  }
  if (params.has("new")) return { view: "new", clone: params.get("new") || null };
  if (params.has("tensor")) return { view: "tensors", id: params.get("tensor") || null };
  if (params.has("tensors")) return { view: "tensors", id: null };
  return { view: "home" };
}

/**
 * @param {Route} route
 * @returns {string} the hash, with "#"
 */
export function formatRoute(route) {
  const enc = encodeURIComponent;
  switch (route.view) {
    case "job":
      return `#job=${enc(route.id)}${route.tab && route.tab !== "charts" ? `&tab=${route.tab}` : ""}` +
        (route.step !== undefined ? `&step=${route.step}` : "");
    case "compare":
      return `#compare=${route.ids.map(enc).join(",")}`;
    case "new":
      return route.clone ? `#new=${enc(route.clone)}` : "#new";
    case "tensors":
      return route.id ? `#tensor=${enc(route.id)}` : "#tensors";
    default:
      return "#";
  }
}
