// @ts-check
/**
 * Wiring: theme, sign-in, the job list and its live stream, the hash router and the views.
 *
 * Start: load the job list (401 -> the sign-in panel; no answer -> a banner and retries with back-off),
 * follow `/api/stream` for state changes, then show the view the hash names. The tensor views
 * (tensors.js) are imported only when `#tensors` or `#tensor=<id>` is opened.
 */

import { Api, ApiError } from "./api.js";
import { ComparePage } from "./compare.js";
import { $, h, replace } from "./html.js";
import { JobList } from "./joblist.js";
import { JobPage } from "./jobpage.js";
import { NewJobPage } from "./newjob.js";
import { formatRoute, parseRoute } from "./route.js";

/** @typedef {import("./feed.js").Job} Job */
/** @typedef {import("./route.js").Route} Route */

const params = new URLSearchParams(location.search);
const theme = params.get("theme");
if (theme === "dark" || theme === "light") document.documentElement.dataset.theme = theme;

const api = new Api();
const banner = $("#banner");
const connection = $("#connection");
const views = {
  home: $("#view-home"), job: $("#view-job"), compare: $("#view-compare"), new: $("#view-new"), tensors: $("#view-tensors"),
};

const jobList = new JobList({
  list: $("#job-list"), empty: $("#job-list-empty"), loading: $("#job-list-loading"),
  filter: /** @type {HTMLSelectElement} */ ($("#state-filter")),
});

const jobPage = new JobPage(views.job, {
  api,
  dialog: /** @type {HTMLDialogElement} */ ($("#batch-dialog")),
  onJob: (job) => jobList.upsert(job),
  onStreamStatus: (status, retryInMs) => setConnection(status, retryInMs),
  onDeleted: (id) => {
    jobList.remove(id);
    location.hash = "#";
  },
});
const comparePage = new ComparePage(views.compare, { api, jobs: () => jobList.sorted() });
const newJobPage = new NewJobPage(views.new, {
  api,
  onSubmitted: (job) => {
    jobList.upsert(job);
    location.hash = formatRoute({ view: "job", id: job.id, tab: "charts" });
  },
});

/** @type {import("./api.js").Stream|null} */
let jobsStream = null;

/**
 * @param {string} status
 * @param {number} [retryInMs]
 */
function setConnection(status, retryInMs = 0) {
  connection.dataset.status = status === "open" ? "live" : status;
  connection.textContent = status === "open" ? "live" : status === "retrying" ? `reconnecting in ${Math.ceil(retryInMs / 1000)}s` : status;
}

/**
 * @param {string|null} text
 * @param {"warn"|"error"} [kind]
 */
function setBanner(text, kind = "warn") {
  banner.hidden = !text;
  banner.classList.toggle("error", kind === "error");
  banner.textContent = text ?? "";
}

function showAuth() {
  jobsStream?.close();
  jobsStream = null;
  jobPage.close();
  $("#layout").hidden = true;
  $("#view-auth").hidden = false;
  setConnection("signed out");
}

/** Load the job list until the backend answers; then follow its changes. */
async function start(attempt = 0) {
  try {
    jobList.setAll(await api.jobs());
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.unauthorized) return showAuth();
    const wait = Math.min(30000, 1000 * 2 ** attempt);
    setBanner(`The Fine-Tune Studio backend at ${location.host} does not answer (${error.message}). ` +
      `Retrying in ${Math.round(wait / 1000)}s; is \`finetune-studio serve\` running?`, "error");
    setConnection("retrying", wait);
    setTimeout(() => start(attempt + 1), wait);
    return;
  }
  setBanner(null);
  followJobs();
  await route();
}

function followJobs() {
  let dropped = false;
  jobsStream = api.streamJobs({
    onEvent: (event) => jobList.upsert(event.data),
    onStatus: async (status, retryInMs) => {
      setConnection(status, retryInMs);
      if (status === "retrying") {
        dropped = true;
        try {
          await api.health();
          await api.jobs();
        } catch (error) {
          if (error instanceof ApiError && error.unauthorized) return showAuth();
          setBanner("Lost the connection to the backend; reconnecting…", "error");
        }
      } else if (status === "open") {
        setBanner(null);
        if (dropped) jobList.setAll(await api.jobs()); // catch up on what changed while away
        dropped = false;
      }
    },
  });
}

/** Show the view that the hash names. */
async function route() {
  const r = parseRoute(location.hash);
  for (const [name, el] of Object.entries(views)) el.hidden = name !== r.view;
  document.body.classList.toggle("detail", r.view !== "home");
  for (const a of document.querySelectorAll(".nav a")) {
    a.classList.toggle("current", /** @type {HTMLElement} */ (a).dataset.nav === r.view);
  }
  jobList.setActive(r.view === "job" ? r.id : null);
  if (r.view !== "job") jobPage.close();
  try {
    if (r.view === "job") await jobPage.open(r.id, r.tab, r.step);
    else if (r.view === "compare") await comparePage.show(r.ids);
    else if (r.view === "new") await newJobPage.show(r.clone ? await api.job(r.clone) : null);
    else if (r.view === "tensors") await showTensors(r.id);
  } catch (error) {
    if (error instanceof ApiError && error.unauthorized) return showAuth();
    const view = views[r.view];
    const e = /** @type {ApiError} */ (error);
    replace(view, h("div.error-box", { role: "alert" }, h("div", null, e.message ?? String(error)), e.hint ? h("div.hint", null, e.hint) : null));
  }
}

/**
 * The list of captured tensors (tensorId null) or one capture.
 * @param {string|null} tensorId
 */
async function showTensors(tensorId) {
  const { mountTensors } = await import("./tensors.js");
  await mountTensors(views.tensors, { api, tensorId });
}

// `#job=<id>&step=<step>` opened the batch: once it is closed the hash names the job only, so that the
// same link (the plugin's *Open batch*) opens it again. replaceState fires no hashchange.
$("#batch-dialog").addEventListener("close", () => {
  const r = parseRoute(location.hash);
  if (r.view === "job" && r.step !== undefined) history.replaceState(null, "", formatRoute({ view: "job", id: r.id, tab: r.tab }));
});

$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const token = /** @type {HTMLInputElement} */ ($("#token-input")).value.trim();
  const query = new URLSearchParams(location.search);
  query.set("token", token);
  location.href = `/?${query}${location.hash}`;
});

window.addEventListener("hashchange", () => route());

/** A handle for tests, benchmarks and the curious (`fts.jobPage.feed` in the console). */
Object.assign(window, { fts: { api, jobList, jobPage, comparePage, get jobsStream() { return jobsStream; } } });

start();
