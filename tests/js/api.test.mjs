import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { Api, ApiError, errorFromBody, metricsPath } from "../../backend/finetune_studio/dashboard/api.js";

test("a 422 names each field with the server's message", () => {
  const e = errorFromBody(422, { detail: [{ loc: ["training", "learning_rate"], field: "training.learning_rate",
    msg: "Input should be less than 1 (got 5)" }], type: "invalid_spec" }, "x");
  assert.equal(e.status, 422);
  assert.deepEqual(e.problems, [{ field: "training.learning_rate", message: "Input should be less than 1 (got 5)" }]);
  assert.equal(e.type, "invalid_spec");
});

test("FastAPI's own validation errors map loc after body to a field", () => {
  const e = errorFromBody(422, { detail: [{ loc: ["body", "data", "train"], msg: "Field required" }] }, "x");
  assert.equal(e.problems[0].field, "data.train");
});

test("other errors carry message, type and hint", () => {
  const e = errorFromBody(409, { detail: "job is running", type: "conflict", hint: "cancel it first" }, "x");
  assert.equal(e.message, "job is running");
  assert.equal(e.hint, "cancel it first");
  assert.equal(errorFromBody(500, null, "fallback").message, "fallback");
});

const realFetch = globalThis.fetch;
afterEach(() => { globalThis.fetch = realFetch; });

test("request maps a network failure to an unreachable ApiError and 401 to unauthorized", async () => {
  globalThis.fetch = async () => { throw new TypeError("Failed to fetch"); };
  await assert.rejects(new Api().jobs(), (e) => e instanceof ApiError && e.unreachable);
  globalThis.fetch = async () => new Response(JSON.stringify({ detail: "no token", type: "unauthorized" }), { status: 401 });
  await assert.rejects(new Api().jobs(), (e) => e instanceof ApiError && e.unauthorized);
});

test("request sends JSON with the cookie and reads the answer", async () => {
  /** @type {any[]} */
  const calls = [];
  globalThis.fetch = async (url, init) => {
    calls.push([url, init]);
    return new Response(JSON.stringify({ jobs: [{ id: "a" }] }), { status: 200 });
  };
  const jobs = await new Api().jobs();
  assert.deepEqual(jobs, [{ id: "a" }]);
  assert.equal(calls[0][0], "/api/jobs");
  assert.equal(calls[0][1].credentials, "same-origin");
  await new Api().metrics("j 1", { names: ["train/loss"], maxPoints: 5 });
  assert.equal(calls[1][0], "/api/jobs/j%201/metrics?names=train%2Floss&max_points=5");
});

class FakeSource {
  /** @type {FakeSource[]} */
  static all = [];
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    /** @type {Record<string, (e: any) => void>} */
    this.listeners = {};
    this.closed = false;
    this.onopen = () => {};
    this.onerror = () => {};
    FakeSource.all.push(this);
  }
  /** @param {string} type @param {(e: any) => void} fn */
  addEventListener(type, fn) { this.listeners[type] = fn; }
  close() { this.closed = true; }
  /** @param {string} type @param {number} id @param {any} data */
  emit(type, id, data) { this.listeners[type]({ lastEventId: String(id), data: JSON.stringify(data) }); }
}

test("Stream resumes after the last seq it saw when the connection drops", async () => {
  globalThis.EventSource = /** @type {any} */ (FakeSource);
  /** @type {any[]} */
  const events = [];
  const stream = new Api().streamJob("j1", { onEvent: (e) => events.push(e) }, 0);
  const first = FakeSource.all.at(-1);
  assert.equal(first?.url, "/api/jobs/j1/stream?after=0");
  first?.emit("metric", 7, { seq: 7, type: "metric", time: 1, data: { step: 70, values: { "train/loss": 1 } } });
  assert.equal(events[0].seq, 7);
  assert.equal(events[0].type, "metric");
  assert.equal(events[0].data.step, 70);
  stream.drop();
  assert.ok(first?.closed);
  stream.reconnect();
  assert.equal(FakeSource.all.at(-1)?.url, "/api/jobs/j1/stream?after=7");
  stream.close();
});

test("the job list's stream turns each Job message into a state event numbered by its SSE id", () => {
  globalThis.EventSource = /** @type {any} */ (FakeSource);
  /** @type {any[]} */
  const events = [];
  const stream = new Api().streamJobs({ onEvent: (e) => events.push(e) });
  const source = FakeSource.all.at(-1);
  assert.equal(source?.url, "/api/stream");
  source?.emit("state", 12, { id: "j1", state: "running" });
  assert.equal(events[0].seq, 12);
  assert.equal(events[0].type, "state");
  assert.deepEqual(events[0].data, { id: "j1", state: "running" });
  stream.drop();
  stream.reconnect();
  assert.equal(FakeSource.all.at(-1)?.url, "/api/stream?after=12");
  stream.close();
});

test("a zoomed chart asks for its range of steps, whole steps covering the range", () => {
  assert.equal(metricsPath("j1", { names: ["train/loss"], fromStep: 10.4, toStep: 19.2, maxPoints: 800 }),
    "/api/jobs/j1/metrics?names=train%2Floss&from_step=10&to_step=20&max_points=800");
  assert.equal(metricsPath("j1", {}), "/api/jobs/j1/metrics");
});
