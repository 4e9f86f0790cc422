"""Dashboard benchmarks (issue 3), against the real server and Debian's Chromium.

1. Opening a job with 1,000,000 logged points: from navigation to the drawn train-loss chart (and from
   a click in an already open dashboard, and the chart's redraw), with a spike that must survive the
   downsampling; medians of 3 opens, 15 clicks and 30 redraws. Also each charting library's fetch and
   parse-and-run time alone, and with `--before REV` the same opens with the dashboard of that git
   revision (alternating with the current one, against the same server).
2. Latency from a reporter's `on_log` (the real StudioCallback and ReporterClient) to the point drawn
   in the page, p50/p95, at 10 logs per second.
3. The page's JS heap over one simulated hour of 10 Hz logging (each step: a metric event with loss,
   learning rate, grad norm and epoch, a progress event and a log line), injected through the ingest
   API faster than real time; it must stay flat once the per-series cap is reached.

    .venv/bin/python benchmarks/bench_dashboard.py                     # all three, full size
    .venv/bin/python benchmarks/bench_dashboard.py --points 100000 --latency-seconds 10 --hours 0.25
    .venv/bin/python benchmarks/bench_dashboard.py --only million --before b3bd3fe   # Plotly before uPlot

Prints the figures and writes them to benchmarks/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NAME = "dashboard"

from finetune_studio.guard import COOKIE  # noqa: E402
from finetune_studio.testing import RunningServer, start_server  # noqa: E402
from finetune_studio.testing.dashboard_driver import launch, open_dashboard  # noqa: E402

RECORD_DRAWS = """
window.__drawn = [];
document.addEventListener("fts:drawn", (e) => window.__drawn.push({t: performance.now(), at: Date.now(), ...e.detail}));
"""


def ingest(server: RunningServer, job_id: str, events: list[dict[str, Any]], batch: int = 5000) -> None:
    for at in range(0, len(events), batch):
        server.client.request("POST", f"/api/jobs/{job_id}/events",
                              json={"attempt": 1, "events": events[at:at + batch]})


def open_run(server: RunningServer, name: str) -> str:
    return str(server.client.request("POST", "/api/runs", json={"name": name})["id"])


def loss_curve(step: int, rng: random.Random) -> float:
    return 2.5 * math.exp(-step / 200_000) + 0.3 + rng.gauss(0, 0.05)


# -- 1. a million points -------------------------------------------------------------------------

def dashboard_at(revision: str, into: Path) -> Path:
    """The dashboard's static files as they were at a git revision (the "before" of a comparison)."""
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", revision, "backend/finetune_studio/dashboard"],
                             check=True, capture_output=True).stdout
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(into, filter="data")
    return into / "backend" / "finetune_studio" / "dashboard"


def serve_dashboard_from(page: Any, url: str, folder: Path) -> None:
    """Answer the page's requests for the dashboard (index.html, /static/...) from `folder`; the API and
    /static/plotly.min.js still come from the server."""
    def fulfill(route: Any) -> None:
        path = route.request.url.removeprefix(url).split("#")[0].split("?")[0]
        name = "index.html" if path in ("", "/") else path.removeprefix("/static/")
        if name != "plotly.min.js" and (folder / name).is_file():
            route.fulfill(path=str(folder / name))
        else:
            route.continue_()
    page.route(lambda u: u.startswith(url) and "/api/" not in u, fulfill)


def time_open(server: RunningServer, browser: Any, job_id: str, before: Path | None, opens: int,
              clicks: int, redraws: int) -> dict[str, Any]:
    """Median times from navigation and from a click to the drawn train-loss chart, and of its redraw."""
    cold, warm, redraw = [], [], []
    drawn: dict[str, Any] = {}
    for _ in range(opens):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        # signed in already (what `/?token=` does), so that the page is the first navigation: Playwright
        # does not route the request that follows a redirect
        context.add_cookies([{"name": COOKIE, "value": server.token, "url": server.url}])
        page = context.new_page()
        page.add_init_script(RECORD_DRAWS)
        if before:
            serve_dashboard_from(page, server.url, before)
        page.goto(f"{server.url}/#job={job_id}")
        page.wait_for_function("() => window.__drawn.some((d) => 'train/loss' in d.lastSteps)", timeout=120_000)
        cold.append(page.evaluate("() => window.__drawn.find((d) => 'train/loss' in d.lastSteps).t"))
        drawn = page.evaluate(DRAWN_POINTS)
        for _ in range(clicks):
            # the dashboard is open on another view; the user clicks the job
            page.evaluate("() => { location.hash = '#'; }")
            page.wait_for_function("() => !document.getElementById('chart-train-loss')")
            time.sleep(0.2)
            warm.append(page.evaluate(CLICK_TO_DRAWN, job_id))
        for k in range(redraws):
            redraw.append(page.evaluate(REDRAW, 1800 + k % 2))
        context.close()
    return {"cold_ms": statistics.median(cold), "cold_all_ms": cold, "warm_ms": statistics.median(warm),
            "warm_all_ms": warm, "redraw_ms": statistics.median(redraw), "drawn_points": drawn["points"],
            "spike_kept": drawn["max"] == 50.0}


DRAWN_POINTS = """async () => {
  const el = document.getElementById('chart-train-loss');
  const charts = await import('/static/charts.js');
  const y = charts.chartState ? charts.chartState(el).traces[0].y : el.data[0].y;
  return {points: y.length, max: Math.max(...y.filter((v) => v !== null))};
}"""

CLICK_TO_DRAWN = """(id) => new Promise((resolve) => {
  const start = performance.now();
  const seen = (e) => {
    if (!('train/loss' in e.detail.lastSteps)) return;
    document.removeEventListener('fts:drawn', seen);
    resolve(performance.now() - start);
  };
  document.addEventListener('fts:drawn', seen);
  location.hash = '#job=' + id;
})"""

# A full redraw of the open loss chart from the page's points (thinning included), as a new point budget
# makes it: the time inside drawSeries, which draws synchronously (uPlot) or until Plotly.react resolves.
REDRAW = """async (budget) => {
  const charts = await import('/static/charts.js');
  const el = document.getElementById('chart-train-loss');
  const data = window.fts.jobPage.feed.series.get('train/loss').data;
  const start = performance.now();
  await charts.drawSeries(el, {title: 'loss (train)', series: data, smoothing: 0.6, yLog: false, xMode: 'step',
    origin: 0, revision: 1, filename: 'loss', maxDrawn: budget});
  return performance.now() - start;
}"""

LIBRARY_LOAD = """(src) => new Promise((resolve, reject) => {
  const script = document.createElement('script');
  const start = performance.now();
  script.src = src;
  script.onload = () => {
    const entry = performance.getEntriesByName(script.src)[0];
    resolve({fetch_ms: entry.responseEnd - start, run_ms: performance.now() - entry.responseEnd,
             bytes: entry.decodedBodySize});
  };
  script.onerror = reject;
  document.head.append(script);
})"""

LIBRARIES = {"plotly.js (full bundle, plotly wheel)": "/static/plotly.min.js",
             "uPlot 1.6.32": "/static/vendor/node_modules/uplot/dist/uPlot.iife.min.js"}


def time_libraries(server: RunningServer, browser: Any, repeats: int) -> dict[str, Any]:
    """Each charting library alone in a fresh page: fetch, then parse and run, medians."""
    out: dict[str, Any] = {}
    for name, src in LIBRARIES.items():
        runs = []
        for _ in range(repeats):
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{server.url}/static/style.css")  # a page of the origin, without the app
            runs.append(page.evaluate(LIBRARY_LOAD, src))
            context.close()
        out[name] = {k: statistics.median(r[k] for r in runs) for k in ("fetch_ms", "run_ms", "bytes")}
    return out


def bench_million(server: RunningServer, browser: Any, points: int, before: str | None,
                  opens: int = 3, clicks: int = 5, redraws: int = 10) -> dict[str, Any]:
    job_id = open_run(server, f"{points:,} points")
    rng = random.Random(0)
    spike_step = int(points * 0.7777)
    t0 = time.time() - points / 10
    started = time.perf_counter()
    for first in range(1, points + 1, 50_000):
        events = [{"seq": s, "type": "metric", "time": t0 + s / 10,
                   "data": {"step": s, "values": {"train/loss": 50.0 if s == spike_step else loss_curve(s, rng)}}}
                  for s in range(first, min(points, first + 49_999) + 1)]
        ingest(server, job_id, events)
    ingest_seconds = time.perf_counter() - started
    metrics_ms = []
    for _ in range(5):
        asked = time.perf_counter()
        server.client.request("GET", f"/api/jobs/{job_id}/metrics", params={"max_points": 4000})
        metrics_ms.append(1000 * (time.perf_counter() - asked))

    result: dict[str, Any] = {"points": points, "ingest_seconds": ingest_seconds,
                              "metrics_request_ms": statistics.median(metrics_ms),
                              "libraries": time_libraries(server, browser, opens)}
    with tempfile.TemporaryDirectory() as tmp:
        # alternate before and after, so that a change in the machine's load hits both alike
        runs: dict[str, list[dict[str, Any]]] = {"after": []} | ({"before": []} if before else {})
        folder = dashboard_at(before, Path(tmp)) if before else None
        for _ in range(opens):
            runs["after"].append(time_open(server, browser, job_id, None, 1, clicks, redraws))
            if folder:
                runs["before"].append(time_open(server, browser, job_id, folder, 1, clicks, redraws))
    for label, parts in runs.items():
        cold = [t for p in parts for t in p["cold_all_ms"]]
        warm = [t for p in parts for t in p["warm_all_ms"]]
        result[label] = {"cold_ms": statistics.median(cold), "cold_all_ms": cold, "warm_ms": statistics.median(warm),
                         "warm_all_ms": warm, "redraw_ms": statistics.median(p["redraw_ms"] for p in parts),
                         "drawn_points": parts[-1]["drawn_points"], "spike_kept": all(p["spike_kept"] for p in parts)}
    if before:
        result["before"]["revision"] = before
    return result


# -- 2. on_log -> drawn ----------------------------------------------------------------------------

def bench_latency(server: RunningServer, browser: Any, seconds: float, rate: float = 10.0) -> dict[str, Any]:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from finetune_studio.delivery import ReporterClient
    from finetune_studio.reporter import StudioCallback

    job_id = open_run(server, "latency")
    steps = int(seconds * rate)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=8, report_to=[])
        state = TrainerState(max_steps=steps, global_step=0, epoch=0.0)
        control = TrainerControl()
        client = ReporterClient(server.url, server.token, job_id, 1, Path(tmp) / "spool.jsonl")
        callback = StudioCallback(client=client)
        callback.on_train_begin(args, state, control)
        callback.on_log(args, state, control, logs={"loss": 3.0})  # warm-up: imports torch for system figures

        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.add_init_script(RECORD_DRAWS)
        open_dashboard(page, server.url, server.token, f"#job={job_id}")
        page.wait_for_function("() => window.__drawn.some((d) => 'train/loss' in d.lastSteps)", timeout=60_000)

        sent: dict[int, float] = {}
        start = time.time()
        for step in range(1, steps + 1):
            time.sleep(max(0.0, start + step / rate - time.time()))
            state.global_step = step
            state.epoch = step / steps
            sent[step] = time.time()
            callback.on_log(args, state, control, logs={"loss": loss_curve(step * 1000, random.Random(step)),
                                                        "learning_rate": 1e-4, "grad_norm": 1.0})
        page.wait_for_function(f"() => window.__drawn.some((d) => d.lastSteps['train/loss'] >= {steps})",
                               timeout=30_000)
        draws = page.evaluate("() => window.__drawn.filter((d) => 'train/loss' in d.lastSteps)"
                              ".map((d) => [d.at, d.lastSteps['train/loss']])")
        frames = page.evaluate("() => window.fts.jobPage.frames.frames")
        client.close()
        context.close()
    latencies = []
    for step, at in sent.items():
        shown = next(t for t, last in draws if last >= step)
        latencies.append(shown / 1000 - at)
    latencies.sort()
    return {"samples": len(latencies), "rate": rate, "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))], "max_ms": 1000 * latencies[-1],
            "frames": frames}


# -- 3. heap over an hour --------------------------------------------------------------------------

def bench_heap(server: RunningServer, browser: Any, hours: float, rate: float = 10.0) -> dict[str, Any]:
    job_id = open_run(server, "an hour at 10 Hz")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    open_dashboard(page, server.url, server.token, f"#job={job_id}")
    page.wait_for_function("() => window.fts.jobPage.stream !== null")

    def heap_mb() -> float:
        cdp.send("HeapProfiler.collectGarbage")
        return float(cdp.send("Runtime.getHeapUsage")["usedSize"]) / 2**20

    rng = random.Random(1)
    total_steps = int(hours * 3600 * rate)
    chunk = int(600 * rate)  # ten simulated minutes
    seq = 0
    t0 = time.time() - hours * 3600
    samples = [{"minutes": 0.0, "heap_mb": heap_mb(), "kept": 0, "log_lines": 0}]
    started = time.perf_counter()
    for first in range(1, total_steps + 1, chunk):
        events = []
        for step in range(first, min(total_steps, first + chunk - 1) + 1):
            when = t0 + step / rate
            values = {"train/loss": loss_curve(step * 20, rng), "train/learning_rate": 1e-4 * (1 - step / total_steps),
                      "train/grad_norm": abs(rng.gauss(1, 0.3)), "train/epoch": step / total_steps * 3}
            events.append({"seq": seq + 1, "type": "metric", "time": when, "data": {"step": step, "values": values}})
            events.append({"seq": seq + 2, "type": "progress", "time": when, "data": {
                "step": step, "max_steps": total_steps, "epoch": values["train/epoch"], "samples_per_second": 80.0,
                "eta_seconds": (total_steps - step) / rate}})
            events.append({"seq": seq + 3, "type": "log", "time": when, "data": {"stream": "stdout", "text": json.dumps(
                {"loss": round(values["train/loss"], 4), "grad_norm": round(values["train/grad_norm"], 4),
                 "learning_rate": values["train/learning_rate"], "epoch": round(values["train/epoch"], 3)})}})
            seq += 3
        ingest(server, job_id, events)
        last = events[-3]["data"]["step"]
        page.wait_for_function(f"() => window.fts.jobPage.feed.series.get('train/loss')?.lastStep === {last}",
                               timeout=300_000)
        page.wait_for_function(f"() => document.getElementById('chart-train-loss')?.dataset.lastStep === '{last}'",
                               timeout=60_000)
        kept = page.evaluate("() => window.fts.jobPage.feed.series.get('train/loss').length")
        logs = page.evaluate("() => window.fts.jobPage.feed.logs.length")
        samples.append({"minutes": last / rate / 60, "heap_mb": heap_mb(), "kept": kept, "log_lines": logs})
    replay_seconds = time.perf_counter() - started
    page.evaluate(f"() => {{ location.hash = '#job={job_id}&tab=logs'; }}")
    page.wait_for_function("() => document.querySelectorAll('#log-view .log-line').length > 0", timeout=60_000)
    time.sleep(1)
    dom_lines = page.evaluate("() => document.querySelectorAll('#log-view .log-line').length")
    with_logs = {"heap_mb": heap_mb(), "dom_lines": dom_lines}
    context.close()
    return {"steps": total_steps, "events": seq, "inject_and_follow_seconds": replay_seconds, "samples": samples,
            "logs_tab": with_logs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--latency-seconds", type=float, default=60)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--only", choices=["million", "latency", "heap"], action="append")
    parser.add_argument("--before", metavar="REV", help="also open the million-point job with the dashboard of this "
                        "git revision (its static files, served through Playwright), alternating with the current one")
    options = parser.parse_args()
    wanted = set(options.only or ["million", "latency", "heap"])

    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {}
    browser_version = ""
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / ".finetune-studio")
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                browser_version = browser.version
                if "million" in wanted:
                    results["million"] = r = bench_million(server, browser, options.points, options.before)
                    print(f"a job with {r['points']:,} points (ingest {r['ingest_seconds']:.1f} s; "
                          f"GET /metrics?max_points=4000 {r['metrics_request_ms']:.0f} ms):", flush=True)
                    for name, lib in r["libraries"].items():
                        print(f"  {name}: {lib['bytes'] / 1e6:.2f} MB, fetch {lib['fetch_ms']:.0f} ms, "
                              f"parse and run {lib['run_ms']:.0f} ms")
                    for label in ("before", "after"):
                        if label in r:
                            m = r[label]
                            print(f"  {label}{' (' + m['revision'] + ')' if 'revision' in m else ''}: navigation -> "
                                  f"drawn {m['cold_ms']:.0f} ms, click -> drawn {m['warm_ms']:.0f} ms, redraw "
                                  f"{m['redraw_ms']:.0f} ms; {m['drawn_points']} points drawn, spike kept: "
                                  f"{m['spike_kept']}", flush=True)
                if "latency" in wanted:
                    results["latency"] = r = bench_latency(server, browser, options.latency_seconds)
                    print(f"on_log -> drawn at {r['rate']:.0f} logs/s over {r['samples']} logs: p50 "
                          f"{r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, max {r['max_ms']:.0f} ms "
                          f"({r['frames']} frames drawn)", flush=True)
                if "heap" in wanted:
                    results["heap"] = r = bench_heap(server, browser, options.hours)
                    print(f"JS heap over {options.hours:g} simulated hour(s) at 10 Hz ({r['events']:,} events, "
                          f"injected and followed in {r['inject_and_follow_seconds']:.0f} s):")
                    for s in r["samples"]:
                        print(f"  {s['minutes']:5.0f} min: {s['heap_mb']:6.1f} MB, {s['kept']:6,} loss points kept, "
                              f"{s['log_lines']:5,} log lines kept")
                    logs_tab = r["logs_tab"]
                    print(f"  Logs tab open: {logs_tab['heap_mb']:.1f} MB, {logs_tab['dom_lines']:,} lines in the DOM")
                browser.close()
        finally:
            server.stop()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    kept = {}  # --only: the other parts' last figures stay
    if options.only and (out / f"{NAME}.json").is_file():
        kept = {k: v for k, v in json.loads((out / f"{NAME}.json").read_text()).items()
                if k in {"million", "latency", "heap"} - wanted}
    (out / f"{NAME}.json").write_text(json.dumps({**kept,
        "benchmark": NAME, "command": " ".join([".venv/bin/python", "benchmarks/bench_dashboard.py", *sys.argv[1:]]),
        "cpus": os.cpu_count(), "load_average_1min": [load_at_start, os.getloadavg()[0]], "chromium": browser_version,
        **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
