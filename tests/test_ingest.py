"""Ingest through the real server (issue 12): batches posted out of order, replayed, overlapping and with
an event twice store every point exactly once, and the pyramid counts what the points table holds."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from typing import Any

from conftest import RunningServer

NAMES = ("train/loss", "train/learning_rate", "train/grad_norm")
EVENTS = 3000
BATCH = 250
SPIKE = 1234


def _event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "type": "metric", "time": time.time(), "data": {"step": seq, "values": {
        "train/loss": 50.0 if seq == SPIKE else 1.0 / seq, "train/learning_rate": 2e-5, "train/grad_norm": 1.5}}}


def test_batches_out_of_order_and_replayed_store_every_point_once(server: RunningServer) -> None:
    job_id = server.client.request("POST", "/api/runs", json={"name": "replays"})["id"]
    events = [_event(seq) for seq in range(1, EVENTS + 1)]
    batches = [events[i:i + BATCH] for i in range(0, EVENTS, BATCH)]
    order = random.Random(12).sample(batches, len(batches))  # later steps arrive before earlier ones
    order[0] = [*order[0], order[0][0]]  # a new event twice in one batch
    replays = [*reversed(batches),  # every batch again
               [e for b in batches[3:5] for e in b][BATCH // 2:-BATCH // 2],  # halves of two batches
               [events[7], events[7], events[-1]]]  # an event twice in one batch
    answers = [server.client.request("POST", f"/api/jobs/{job_id}/events", json={"attempt": 1, "events": batch})
               for batch in [*order, *replays]]

    assert sum(a["accepted"] for a in answers) == EVENTS
    assert sum(a["duplicates"] for a in answers) == 1 + sum(map(len, replays))
    assert all(a["accepted"] == 0 for a in answers[len(order):])
    metrics = server.client.metrics(job_id, max_points=50)
    assert metrics["total_points"] == {name: EVENTS for name in NAMES}
    assert SPIKE in metrics["series"]["train/loss"]["step"]  # kept by the downsampled read
    listed = server.client.request("GET", f"/api/jobs/{job_id}/events?types=metric&limit=5000")["events"]
    assert sorted(e["data"]["step"] for e in listed) == list(range(1, EVENTS + 1))
    every = server.client.request("GET", f"/api/jobs/{job_id}/events?limit=10000")["events"]
    assert [e["seq"] for e in every] == list(range(1, len(every) + 1))  # the SSE ids: no gap, none twice
    with contextlib.closing(sqlite3.connect(f"{(server.data_dir / 'studio.db').as_uri()}?mode=ro", uri=True)) as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT src_seq) FROM events WHERE job_id = ? AND type = 'metric'",
                          (job_id,)).fetchone() == (EVENTS, EVENTS)
        for sid, name, count in db.execute("SELECT id, name, points FROM series WHERE job_id = ?", (job_id,)):
            rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT step) FROM points WHERE series = ?", (sid,)).fetchone()
            assert rows == (count, count) == (EVENTS, EVENTS), name
            levels = db.execute("SELECT level, SUM(n) FROM pyramid WHERE series = ? GROUP BY level", (sid,)).fetchall()
            assert levels and all(n == EVENTS for _, n in levels), (name, levels)
