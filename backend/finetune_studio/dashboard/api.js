// @ts-check
/**
 * The backend's HTTP API (table in DESIGN.md): fetch for requests, EventSource for streams.
 * Auth rides on the HttpOnly `fts_token` cookie that `/?token=…` sets; same origin, so no header here.
 */

/** @typedef {import("./feed.js").Job} Job */
/** @typedef {import("./feed.js").LogLine} LogLine */
/** @typedef {import("./feed.js").StreamEvent} StreamEvent */
/** @typedef {import("./series.js").SeriesData} SeriesData */
/** @typedef {{field: string, message: string}} FieldProblem */

/** An error answer of the API, or no answer at all (status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status 0 when the backend could not be reached
   * @param {string} message
   * @param {{type?: string, hint?: string|null, problems?: FieldProblem[]}} [extra]
   */
  constructor(status, message, extra = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = extra.type ?? "error";
    this.hint = extra.hint ?? null;
    /** @type {FieldProblem[]} one per field named by a 422 */
    this.problems = extra.problems ?? [];
  }

  get unauthorized() {
    return this.status === 401;
  }

  get unreachable() {
    return this.status === 0;
  }
}

/**
 * Turn an error body into an ApiError: `{"detail": "…", "type", "hint"}`, or a 422 whose detail lists
 * fields (`{"loc", "field", "msg"}`; FastAPI's own request validation has `loc` only, after "body").
 * @param {number} status
 * @param {any} body
 * @param {string} fallback
 */
export function errorFromBody(status, body, fallback) {
  if (body && Array.isArray(body.detail)) {
    const problems = body.detail.map((/** @type {any} */ d) => ({
      field: d.field ?? (Array.isArray(d.loc) ? d.loc.filter((/** @type {any} */ p) => p !== "body").join(".") : ""),
      message: String(d.msg ?? d.message ?? "invalid"),
    }));
    const text = problems.map((/** @type {FieldProblem} */ p) => (p.field ? `${p.field}: ${p.message}` : p.message));
    return new ApiError(status, text.join("; ") || fallback, { type: body.type ?? "invalid_spec", hint: body.hint, problems });
  }
  if (body && typeof body.detail === "string") {
    return new ApiError(status, body.detail, { type: body.type, hint: body.hint });
  }
  return new ApiError(status, fallback);
}

/**
 * `GET /api/jobs/{id}/metrics` (wire/jobs.py `Metrics`): `total_points` per series as stored; `last_seq`,
 * the stream seq the series cover (the stream resumes after it).
 * @typedef {{series: Record<string, SeriesData>, total_points: Record<string, number>, last_seq: number}} Metrics
 */

/**
 * @param {string} id
 * @param {{names?: string[], maxPoints?: number, fromStep?: number, toStep?: number}} options
 */
export function metricsPath(id, options) {
  const query = new URLSearchParams();
  if (options.names?.length) query.set("names", options.names.join(","));
  if (options.fromStep !== undefined) query.set("from_step", String(Math.floor(options.fromStep)));
  if (options.toStep !== undefined) query.set("to_step", String(Math.ceil(options.toStep)));
  if (options.maxPoints) query.set("max_points", String(options.maxPoints));
  const q = query.toString();
  return `/api/jobs/${encodeURIComponent(id)}/metrics${q ? `?${q}` : ""}`;
}

export class Api {
  /** @param {string} [base] prefix of every path (empty: same origin) */
  constructor(base = "") {
    this.base = base;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {any} [body]
   */
  async request(method, path, body) {
    /** @type {RequestInit} */
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { ...init.headers, "Content-Type": "application/json" };
    }
    let response;
    try {
      response = await fetch(this.base + path, init);
    } catch (error) {
      throw new ApiError(0, `the backend does not answer (${error instanceof Error ? error.message : error})`);
    }
    const text = await response.text();
    let parsed = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    if (!response.ok) throw errorFromBody(response.status, parsed, `${method} ${path}: HTTP ${response.status}`);
    return parsed;
  }

  health() {
    return this.request("GET", "/api/health");
  }

  /** @returns {Promise<Job[]>} newest first */
  async jobs() {
    return (await this.request("GET", "/api/jobs")).jobs;
  }

  /** @param {string} id @returns {Promise<Job>} */
  job(id) {
    return this.request("GET", `/api/jobs/${encodeURIComponent(id)}`);
  }

  /** @param {Record<string, any>} spec @returns {Promise<Job>} */
  submit(spec) {
    return this.request("POST", "/api/jobs", spec);
  }

  /** @param {string} id @returns {Promise<Job>} */
  cancel(id) {
    return this.request("POST", `/api/jobs/${encodeURIComponent(id)}/cancel`);
  }

  /** @param {string} id @returns {Promise<Job>} */
  resume(id) {
    return this.request("POST", `/api/jobs/${encodeURIComponent(id)}/resume`);
  }

  /** @param {string} id @param {boolean} files also delete the job's folder */
  remove(id, files = false) {
    return this.request("DELETE", `/api/jobs/${encodeURIComponent(id)}${files ? "?files=true" : ""}`);
  }

  /**
   * Metric series, each bucketed to about `maxPoints` (min and max of each bucket kept); with
   * `fromStep`/`toStep`, only that range of steps (inclusive), so a zoomed chart gets raw points.
   * @param {string} id
   * @param {{names?: string[], maxPoints?: number, fromStep?: number, toStep?: number}} [options]
   * @returns {Promise<Metrics>}
   */
  metrics(id, options = {}) {
    return this.request("GET", metricsPath(id, options));
  }

  /**
   * @param {string} id
   * @param {number} after
   * @param {number} limit
   * @returns {Promise<LogLine[]>}
   */
  async logs(id, after = 0, limit = 5000) {
    return (await this.request("GET", `/api/jobs/${encodeURIComponent(id)}/logs?after=${after}&limit=${limit}`)).lines;
  }

  /** @param {string} id @param {number} step */
  batch(id, step) {
    return this.request("GET", `/api/jobs/${encodeURIComponent(id)}/steps/${step}/batch`);
  }

  /**
   * The job's latest evaluation with its details (confusion matrix, per class, samples), or null.
   * @param {string} id
   * @returns {Promise<StreamEvent|null>}
   */
  latestEval(id) {
    return this.request("GET", `/api/jobs/${encodeURIComponent(id)}/evals/latest`);
  }

  /**
   * The job's `anomaly` events so far (issue 15), oldest first.
   * @param {string} id
   * @returns {Promise<StreamEvent[]>}
   */
  async anomalies(id) {
    return (await this.request("GET", `/api/jobs/${encodeURIComponent(id)}/events?types=anomaly`)).events;
  }

  schema() {
    return this.request("GET", "/api/schema/job-spec");
  }

  system() {
    return this.request("GET", "/api/system");
  }

  /**
   * Follow one job: metric, progress, eval, system, log, state and anomaly events, resuming after the last
   * seq seen whenever the connection drops.
   * @param {string} id
   * @param {StreamHandlers} handlers
   * @param {number|null} after null: only what is new from now on
   */
  streamJob(id, handlers, after = null) {
    return new Stream(
      (seq) => `${this.base}/api/jobs/${encodeURIComponent(id)}/stream${seq === null ? "" : `?after=${seq}`}`,
      ["metric", "progress", "eval", "system", "log", "state", "anomaly"],
      handlers,
      after,
      (data) => /** @type {StreamEvent} */ (data),
    );
  }

  /**
   * Follow every job's state changes (for the job list): each message is a whole Job, its SSE id the
   * change's seq.
   * @param {StreamHandlers} handlers
   */
  streamJobs(handlers) {
    return new Stream(
      (seq) => `${this.base}/api/stream${seq === null ? "" : `?after=${seq}`}`,
      ["state"],
      handlers,
      null,
      (data, seq) => ({ seq, type: "state", time: Date.now() / 1000, data }),
    );
  }
}

/**
 * @typedef {{
 *   onEvent: (event: StreamEvent) => void,
 *   onStatus?: (status: "open" | "retrying", retryInMs: number) => void,
 * }} StreamHandlers
 */

/**
 * An EventSource that reconnects with back-off and resumes after the last event id it saw. The
 * browser's own retry is not used: it would reconnect at a fixed pace and cannot tell 401 from a
 * dropped network, so every error closes the source and the next one opens with `?after=`.
 */
export class Stream {
  /**
   * @param {(after: number|null) => string} url
   * @param {string[]} types
   * @param {StreamHandlers} handlers
   * @param {number|null} after
   * @param {(data: any, seq: number) => StreamEvent} toEvent a message's JSON data (and SSE id) as an event
   */
  constructor(url, types, handlers, after, toEvent) {
    this.url = url;
    this.types = types;
    this.handlers = handlers;
    this.toEvent = toEvent;
    /** @type {number|null} */
    this.lastSeq = after;
    /** @type {EventSource|null} */
    this.source = null;
    this.closed = false;
    this.failures = 0;
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.timer = null;
    this.open();
  }

  open() {
    if (this.closed) return;
    const source = new EventSource(this.url(this.lastSeq), { withCredentials: true });
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.handlers.onStatus?.("open", 0);
    };
    source.onerror = () => this.drop();
    for (const type of this.types) {
      source.addEventListener(type, (message) => this.receive(/** @type {MessageEvent} */ (message)));
    }
  }

  /** @param {MessageEvent} message */
  receive(message) {
    const event = this.toEvent(JSON.parse(message.data), Number(message.lastEventId));
    if (this.lastSeq === null || event.seq > this.lastSeq) this.lastSeq = event.seq;
    this.handlers.onEvent(event);
  }

  /** Close the connection and come back after a back-off (also used by tests to cut the stream). */
  drop() {
    this.source?.close();
    this.source = null;
    if (this.closed || this.timer) return;
    const delay = Math.min(15000, 500 * 2 ** this.failures);
    this.failures++;
    this.handlers.onStatus?.("retrying", delay);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.open();
    }, delay);
  }

  /** Reconnect now (after a drop), without waiting for the back-off. */
  reconnect() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.source?.close();
    this.open();
  }

  close() {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.source?.close();
    this.source = null;
  }
}
