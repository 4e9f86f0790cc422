"""Ingest throughput against plain SQLite, in one run (issue 12): every point counted afterwards.

The same points (4 values per `metric` event: loss, learning rate, grad norm, epoch, what `on_log` sends)
go three ways, for each batch size (events per request; 1,000 is the reporter's `MAX_BATCH`):

1. plain SQLite: rows (series, step, value, time) by `executemany` into a bare WITHOUT ROWID table keyed
   (series, step), one transaction per batch, the store's pragmas, rows built beforehand: the ceiling;
2. `Store.ingest` called directly, each batch checked (`IngestBatch.model_validate_json`) just before and
   timed apart (the store alone: events table, points, pyramid, one transaction per batch);
3. HTTP: one client POSTs `/api/jobs/{id}/events` to the real server (`finetune_studio.testing.server`),
   bodies serialised beforehand, one request at a time. The server's CPU seconds are read from /proc
   around the timed loop: on a shared machine they move less than the wall time does.

Then, for each way, the rows are counted: points per series in the database (and through the API for
HTTP), events of the job, distinct reporter seqs; and for HTTP three batches are sent again (all
duplicates, nothing stored, counts unchanged). `ok` is true only when every count is exact.

    .venv/bin/python benchmarks/bench_ingest.py [--points 1000000] [--batch 1000 --batch 5000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from finetune_studio.delivery import MAX_BATCH
from finetune_studio.store import Store
from finetune_studio.testing.server import RunningServer, start_server
from finetune_studio.wire import IngestBatch, RunCreate

HERE = Path(__file__).resolve().parent
NAME = "ingest"
NAMES = ("train/loss", "train/learning_rate", "train/grad_norm", "train/epoch")


def events_of(first: int, count: int) -> list[dict[str, Any]]:
    """`count` metric events from seq (and step) `first`, as a reporter sends them."""
    now = time.time()
    return [{"seq": s, "type": "metric", "time": now + s * 1e-3, "data": {"step": s, "values": {
        "train/loss": 2.0 / (1 + s * 1e-4), "train/learning_rate": 2e-5 * (1 - s * 1e-7),
        "train/grad_norm": 1.0 + (s % 97) / 97, "train/epoch": s / 10_000}}} for s in range(first, first + count)]


def bodies_of(total_events: int, batch: int) -> list[bytes]:
    return [json.dumps({"attempt": 1, "events": events_of(first, min(batch, total_events - first + 1))}).encode()
            for first in range(1, total_events + 1, batch)]


def plain(folder: Path, bodies: list[bytes]) -> dict[str, Any]:
    """The same points by executemany into a bare table, one transaction per batch: SQLite's ceiling."""
    batches = [[(series, e["data"]["step"], e["data"]["values"][name], e["time"])
                for e in json.loads(body)["events"] for series, name in enumerate(NAMES)] for body in bodies]
    conn = sqlite3.connect(folder / "plain.db")
    conn.execute("PRAGMA journal_mode=WAL")  # the store's pragmas (store._connect)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE points (series INTEGER NOT NULL, step INTEGER NOT NULL, value REAL, "
                 "time REAL NOT NULL, PRIMARY KEY (series, step)) WITHOUT ROWID")
    started = time.perf_counter()
    for rows in batches:
        with conn:
            conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", rows)
    seconds = time.perf_counter() - started
    stored = conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    conn.close()
    sent = sum(map(len, batches))
    return {"seconds": seconds, "points_per_second": sent / seconds, "points_stored": stored, "ok": stored == sent}


def direct(folder: Path, bodies: list[bytes]) -> dict[str, Any]:
    """Store.ingest alone, in this process; each batch is checked just before, timed apart."""
    store = Store(folder / "direct.db")
    job_id = "direct"
    store.write(lambda c: c.execute("INSERT INTO jobs (id, name, task, kind, state, created_at, output_dir, spec) "
                                    "VALUES (?, 'direct', 'custom', 'attached', 'running', 0, '/tmp', 'null')",
                                    (job_id,)))
    check_seconds = seconds = 0.0
    sent = 0
    for body in bodies:
        started = time.perf_counter()
        batch = IngestBatch.model_validate_json(body)
        checked = time.perf_counter()
        store.ingest(job_id, batch.attempt, batch.events)
        check_seconds += checked - started
        seconds += time.perf_counter() - checked
        sent += len(batch.events)
    store.close()
    counts = count_rows(folder / "direct.db", job_id)
    return {"seconds": seconds, "points_per_second": sent * len(NAMES) / seconds,
            "check_seconds": check_seconds, "checked_points_per_second": sent * len(NAMES) / check_seconds,
            "rows": counts, "ok": exact(counts, sent)}


def count_rows(database: Path, job_id: str) -> dict[str, Any]:
    """Raw rows, read-only: points per series, the job's events, distinct (attempt, seq) among them."""
    with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as conn:
        points = dict(conn.execute("SELECT s.name, COUNT(*) FROM points p JOIN series s ON s.id = p.series "
                                   "WHERE s.job_id = ? GROUP BY s.name", (job_id,)).fetchall())
        series_counts = dict(conn.execute("SELECT name, points FROM series WHERE job_id = ?", (job_id,)).fetchall())
        events, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT src_attempt || ':' || src_seq) FROM events "
                                        "WHERE job_id = ?", (job_id,)).fetchone()
    return {"points": points, "series_counts": series_counts, "events": events, "distinct_seqs": distinct}


def exact(counts: dict[str, Any], events: int) -> bool:
    return (counts["events"] == counts["distinct_seqs"] == events
            and all(counts["points"].get(n) == counts["series_counts"].get(n) == events for n in NAMES))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def over_http(server: RunningServer, bodies: list[bytes], batch: int) -> dict[str, Any]:
    run = RunCreate(name=f"ingest {batch}", output_dir="/tmp").model_dump(mode="json")
    job_id = server.client.request("POST", "/api/runs", json=run)["id"]
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}",
                                                      "Content-Type": "application/json"}, trust_env=False, timeout=120)
    url = f"/api/jobs/{job_id}/events"
    http.post(url, content=b'{"attempt": 1, "events": []}').raise_for_status()  # warm-up: a heartbeat, nothing stored
    accepted, per_batch = 0, []
    server_cpu, client_cpu = cpu_seconds(server.process.pid), time.process_time()
    started = time.perf_counter()
    for body in bodies:
        t = time.perf_counter()
        answer = http.post(url, content=body)
        answer.raise_for_status()
        per_batch.append(time.perf_counter() - t)
        accepted += answer.json()["accepted"]
    seconds = time.perf_counter() - started
    server_cpu = cpu_seconds(server.process.pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    sent = sum(len(json.loads(body)["events"]) for body in bodies)
    again = [http.post(url, content=bodies[i]).json() for i in (0, len(bodies) // 2, -1)]
    http.close()
    totals = server.client.metrics(job_id, names=",".join(NAMES), max_points=10)["total_points"]
    counts = count_rows(server.data_dir / "studio.db", job_id)
    resent_ok = all(a["accepted"] == 0 and a["duplicates"] > 0 for a in again)
    points = sent * len(NAMES)
    return {"seconds": seconds, "points_per_second": points / seconds,
            "batch_ms_median": statistics.median(per_batch) * 1e3,
            "server_cpu_seconds": server_cpu, "server_cpu_points_per_second": points / server_cpu,
            "client_cpu_seconds": client_cpu, "accepted": accepted, "resent": again, "api_total_points": totals,
            "rows": counts, "ok": accepted == sent and resent_ok and exact(counts, sent)
            and all(totals.get(n) == sent for n in NAMES)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points per batch size (4 per event)")
    parser.add_argument("--batch", type=int, action="append", help=f"events per request (default {MAX_BATCH} and 5000)")
    args = parser.parse_args()
    sizes = args.batch or [MAX_BATCH, 5000]
    events = args.points // len(NAMES)
    loads = [Path("/proc/loadavg").read_text().strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        server = start_server(Path(tmp) / "state", threads=None)
        try:
            for size in sizes:
                bodies = bodies_of(events, size)
                folder = Path(tmp) / f"b{size}"
                folder.mkdir()
                row = {"events_per_batch": size, "batches": len(bodies), "points": events * len(NAMES),
                       "plain": plain(folder, bodies), "direct": direct(folder, bodies),
                       "http": over_http(server, bodies, size)}
                row["http_over_plain"] = row["http"]["points_per_second"] / row["plain"]["points_per_second"]
                rows.append(row)
                loads.append(Path("/proc/loadavg").read_text().strip())
        finally:
            server.stop()
    print(f"\nIngest of {events * len(NAMES):,} points ({events:,} metric events x {len(NAMES)} values) per batch "
          f"size, {os.cpu_count()} CPUs, /proc/loadavg {loads[0]} -> {loads[-1]}\n")
    print("| events/request | plain executemany points/s | Store.ingest points/s | HTTP points/s | HTTP / plain "
          "| HTTP median ms/request | server CPU points/s | every point once |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        ok = all(r[k]["ok"] for k in ("plain", "direct", "http"))
        print(f"| {r['events_per_batch']:,} | {r['plain']['points_per_second']:,.0f} | "
              f"{r['direct']['points_per_second']:,.0f} | **{r['http']['points_per_second']:,.0f}** | "
              f"{r['http_over_plain']:.0%} | {r['http']['batch_ms_median']:.1f} | "
              f"{r['http']['server_cpu_points_per_second']:,.0f} | {'yes' if ok else 'NO'} |")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{NAME}.json").write_text(json.dumps({
        "benchmark": NAME, "command": " ".join([".venv/bin/python", "benchmarks/bench_ingest.py", *sys.argv[1:]]),
        "cpus": os.cpu_count(), "loadavg": loads, "runs": rows}, indent=2), encoding="utf-8")
    if not all(r[k]["ok"] for r in rows for k in ("plain", "direct", "http")):
        raise SystemExit("a point was lost or stored twice: see results/ingest.json")


if __name__ == "__main__":
    main()
