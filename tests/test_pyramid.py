"""The min/max pyramid against brute force over the raw points (issue 12): random series with NaN, gaps
and a resumed attempt rewriting steps; reads of any range keep every bucket's extremes and come back raw
once the range is small; counts and names come from the per-series table."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from pathlib import Path

import pytest

from conftest import RunningServer
from finetune_studio import pyramid
from finetune_studio.store import Store
from finetune_studio.wire import Job, ReporterEvent

NAMES = ("train/loss", "train/grad_norm")
Raw = dict[int, tuple[float | None, float]]  # step -> (value, time), last write wins


def _job(store: Store, job_id: str = "j") -> None:
    store.insert_job(Job(id=job_id, name=job_id, task="t", kind="attached", state="running", attempt=1,
                         created_at=time.time(), output_dir=""))


def _random_value(rng: random.Random) -> float | None:
    roll = rng.random()
    if roll < 0.07:
        return None  # NaN or ±inf in the run: the reporter sends null
    if roll < 0.09:
        return rng.choice([1e6, -1e6]) * rng.random()  # spikes
    return rng.gauss(1.0, 0.3)


def _log(store: Store, rng: random.Random, attempt: int, steps: list[int], raw: dict[str, Raw]) -> None:
    """Log steps through store.ingest in random batches, as a reporter would; record what must be stored."""
    seq, i = 0, 0
    while i < len(steps):
        size = rng.randint(1, 300)
        events = []
        for step in steps[i:i + size]:
            seq += 1
            values = {n: _random_value(rng) for n in NAMES if rng.random() < 0.9}
            when = 1000.0 + seq + attempt * 1e5
            events.append(ReporterEvent(seq=seq, type="metric", time=when, data={"step": step, "values": values}))
            for name, value in values.items():
                raw[name][step] = (value, when)
        assert len(store.ingest("j", attempt, events)) == len(events)
        i += size


def _random_run(tmp_path: Path, seed: int) -> tuple[Store, dict[str, Raw]]:
    rng = random.Random(seed)
    store = Store(tmp_path / f"studio-{seed}.db")
    _job(store)
    steps, step = [], rng.randint(0, 50)
    for _ in range(rng.randint(500, 3000)):
        step += rng.choice([1, 1, 1, 2, 3, 17]) if rng.random() > 0.002 else rng.randint(500, 20_000)  # gaps
        steps.append(step)
    raw: dict[str, Raw] = {n: {} for n in NAMES}
    _log(store, rng, 1, steps, raw)
    # a resumed attempt goes back to a checkpoint and logs those steps again, then further
    back = rng.randrange(len(steps))
    again = steps[back:back + rng.randint(1, 800)]
    _log(store, rng, 2, again + [steps[-1] + k for k in range(1, rng.randint(2, 200))], raw)
    return store, raw


def _brute(raw: Raw, a: int, b: int) -> tuple[int, float | None, float | None, int | None]:
    inside = {s: v for s, (v, _) in raw.items() if a <= s <= b}
    values = [v for v in inside.values() if v is not None]
    nulls = [s for s, v in inside.items() if v is None]
    return len(inside), min(values, default=None), max(values, default=None), min(nulls, default=None)


@pytest.mark.parametrize("seed", range(4))
def test_every_bucket_of_every_level_matches_brute_force(tmp_path: Path, seed: int) -> None:
    store, raw = _random_run(tmp_path, seed)
    conn = sqlite3.connect(store.path)
    for name in NAMES:
        points = raw[name]
        sid, count, first, last, levels = conn.execute(
            "SELECT id, points, first_step, last_step, levels FROM series WHERE job_id = 'j' AND name = ?",
            (name,)).fetchone()
        assert (count, first, last) == (len(points), min(points), max(points))
        assert levels == pyramid.levels_for(first, last)
        stored = dict(((s, (v, t)) for s, v, t in conn.execute(
            "SELECT step, value, time FROM points WHERE series = ?", (sid,))))
        assert stored == points
        for level in range(1, levels + 1):
            rows = conn.execute("SELECT bucket, n, lo, lo_step, lo_time, hi, hi_step, hi_time, nan_step "
                                "FROM pyramid WHERE series = ? AND level = ?", (sid, level)).fetchall()
            shift = level * pyramid.BITS
            assert {r[0] for r in rows} == {s >> shift for s in points}, f"level {level}: buckets"
            for bucket, n, lo, lo_step, lo_time, hi, hi_step, hi_time, nan_step in rows:
                a, b = bucket << shift, ((bucket + 1) << shift) - 1
                assert (n, lo, hi, nan_step) == _brute(points, a, b), f"level {level} bucket {bucket}"
                if lo is not None:  # the extremes sit at real steps of the bucket, with their times
                    assert a <= lo_step <= b and points[lo_step] == (lo, lo_time)
                    assert a <= hi_step <= b and points[hi_step] == (hi, hi_time)
    conn.close()
    store.close()


@pytest.mark.parametrize("seed", range(3))
def test_reads_of_any_range_keep_extremes_and_are_raw_when_small(tmp_path: Path, seed: int) -> None:
    store, raw = _random_run(tmp_path, seed)
    rng = random.Random(seed)
    conn = sqlite3.connect(store.path)
    for name in NAMES:
        points = raw[name]
        steps = sorted(points)
        sid, levels = conn.execute("SELECT id, levels FROM series WHERE job_id = 'j' AND name = ?",
                                   (name,)).fetchone()
        for _ in range(40):
            a, b = sorted(rng.sample(range(steps[0] - 10, steps[-1] + 10), 2))
            max_points = rng.choice([10, 37, 100, 500, 5000])
            series, total = store.series("j", name, max_points, a, b)
            assert total == len(points)
            got = list(zip(series.step, series.value, series.time, strict=True))
            inside = [(s, *points[s]) for s in steps if a <= s <= b]
            if len(inside) <= max_points:
                assert got == inside, "a small range comes back raw"
                continue
            assert len(got) <= max_points and series.step == sorted(set(series.step))
            assert all(points[s] == (v, t) and a <= s <= b for s, v, t in got), "only real points of the range"
            assert got[0] == inside[0] and got[-1] == inside[-1], "the range's ends"
            _, lo, hi, nan_step = _brute(points, a, b)
            assert lo in series.value and hi in series.value, "the range's extremes (spikes) stay"
            assert nan_step is None or None in series.value, "a NaN in the range shows as a null"
            # every bucket of any level over the range: its extremes as brute force has them
            level = rng.randint(1, levels)
            shift = level * pyramid.BITS
            edges = sorted({a, b + 1} | {k << shift for k in range((a >> shift) + 1, (b >> shift) + 1)})
            summaries = pyramid.buckets(conn, sid, level, a, b)
            expected = [e for e in (_brute(points, x, y - 1) for x, y in zip(edges, edges[1:], strict=False)) if e[0]]
            assert [(s.n, s.lo and s.lo[1], s.hi and s.hi[1], s.nan and s.nan[0]) for s in summaries] == expected
    conn.close()
    store.close()


def test_a_rewritten_step_lowers_the_bucket_max(tmp_path: Path) -> None:
    """A resumed attempt that logs a step again replaces it: a spike it rewrites leaves every level."""
    store = Store(tmp_path / "studio.db")
    _job(store)
    store.ingest("j", 1, [ReporterEvent(seq=s, type="metric", time=float(s),
                                        data={"step": s, "values": {"loss": 99.0 if s == 700 else 1.0}})
                          for s in range(1, 1001)])
    assert 99.0 in store.series("j", "loss", 20)[0].value
    again = ReporterEvent(seq=1, type="metric", time=5000.0, data={"step": 700, "values": {"loss": 0.5}})
    store.ingest("j", 2, [again])
    series, total = store.series("j", "loss", 20)
    assert total == 1000 and 99.0 not in series.value and 0.5 in series.value
    store.close()


def test_a_replayed_batch_is_stored_once_and_counted_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "studio.db")
    _job(store)
    batch = [ReporterEvent(seq=s, type="metric", time=float(s), data={"step": s, "values": {"loss": 1.0, "lr": 2.0}})
             for s in range(1, 501)]
    assert len(store.ingest("j", 1, batch)) == 500
    assert store.ingest("j", 1, batch[100:300]) == []
    assert len(store.ingest("j", 1, [batch[0], *batch[499:], batch[499]])) == 0
    twice = ReporterEvent(seq=501, type="metric", time=1.0, data={"step": 501, "values": {"loss": 3.0}})
    assert len(store.ingest("j", 1, [twice, twice])) == 1
    assert store.series("j", "loss", 10)[1] == 501 and store.metric_names("j") == ["loss", "lr"]
    assert [e.seq for e in store.events_after("j", 0)] == list(range(1, 502))
    store.close()


def test_points_of_a_state_folder_made_before_the_pyramid_are_moved_over(tmp_path: Path) -> None:
    path = tmp_path / "studio.db"
    Store(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE metrics (job_id TEXT NOT NULL, name TEXT NOT NULL, step INTEGER NOT NULL, "
                     "value REAL, time REAL NOT NULL, PRIMARY KEY (job_id, name, step)) WITHOUT ROWID")
        conn.executemany("INSERT INTO metrics VALUES ('old', 'loss', ?, ?, ?)",
                         [(s, None if s == 3 else 9.0 if s == 77 else 1.0, float(s)) for s in range(1, 101)])
    store = Store(path)
    series, total = store.series("old", "loss", 10)
    assert total == 100 and 9.0 in series.value and None in series.value
    assert store.metric_names("old") == ["loss"]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'metrics'").fetchone() is None
    store.close()


def test_deleting_a_job_deletes_its_points_and_pyramid(tmp_path: Path) -> None:
    store = Store(tmp_path / "studio.db")
    _job(store)
    store.ingest("j", 1, [ReporterEvent(seq=s, type="metric", time=1.0, data={"step": s, "values": {"loss": 1.0}})
                          for s in range(1, 100)])
    store.delete_job("j")
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        counts = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("series", "points", "pyramid")]
    assert counts == [0, 0, 0]
    store.close()


def test_metrics_route_serves_a_zoomed_range_raw(server: RunningServer) -> None:
    api = server.client
    run = api.request("POST", "/api/runs", json={"name": "long", "task": "custom", "output_dir": str(server.data_dir),
                                                 "training_args": {}, "pid": None})["id"]
    events = [{"seq": s, "type": "metric", "time": float(s),
               "data": {"step": s, "values": {"loss": s % 7 + (50 if s == 4321 else 0)}}} for s in range(1, 10_001)]
    api.request("POST", f"/api/jobs/{run}/events", json={"attempt": 1, "events": events})
    whole = api.request("GET", f"/api/jobs/{run}/metrics?names=loss&max_points=200")
    assert whole["total_points"]["loss"] == 10_000 and len(whole["series"]["loss"]["step"]) <= 200
    assert 4321 in whole["series"]["loss"]["step"]
    zoom = api.request("GET", f"/api/jobs/{run}/metrics?names=loss&max_points=200&from_step=4300&to_step=4400")
    assert zoom["series"]["loss"]["step"] == list(range(4300, 4401))
    assert zoom["total_points"]["loss"] == 10_000
    empty = api.request("GET", f"/api/jobs/{run}/metrics?from_step=20000")
    assert empty["series"] == {"loss": {"step": [], "value": [], "time": []}}
