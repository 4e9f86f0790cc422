"""The store alone: downsampling keeps spikes, events are numbered without gaps."""

from __future__ import annotations

import time
from pathlib import Path

from finetune_studio.store import Store
from finetune_studio.wire import Job, ReporterEvent


def _store_with_points(tmp_path: Path, count: int, spike_at: int) -> Store:
    store = Store(tmp_path / "studio.db")
    store.insert_job(Job(id="j", name="j", task="t", kind="attached", state="running", attempt=1,
                         created_at=time.time(), output_dir=""))
    events = [ReporterEvent(seq=s, type="metric", time=float(s),
                            data={"step": s, "values": {"train/loss": 100.0 if s == spike_at else 1.0}})
              for s in range(1, count + 1)]
    store.ingest("j", 1, events)
    return store


def test_downsampling_keeps_the_spike_and_the_ends(tmp_path: Path) -> None:
    store = _store_with_points(tmp_path, 10_000, spike_at=4321)
    series, total = store.series("j", "train/loss", max_points=200)
    assert total == 10_000
    assert len(series.step) <= 204
    assert 4321 in series.step and series.value[series.step.index(4321)] == 100.0
    assert series.step[0] == 1 and series.step[-1] == 10_000
    assert series.step == sorted(series.step)
    store.close()


def test_small_series_come_back_whole(tmp_path: Path) -> None:
    store = _store_with_points(tmp_path, 50, spike_at=7)
    series, _ = store.series("j", "train/loss", max_points=100)
    assert series.step == list(range(1, 51))
    store.close()


def test_events_are_numbered_and_replayed_after_a_sequence_number(tmp_path: Path) -> None:
    store = _store_with_points(tmp_path, 20, spike_at=1)
    store.append("j", [("log", {"stream": "stdout", "text": "hello"})])
    assert [e.seq for e in store.events_after("j", 15)] == [16, 17, 18, 19, 20, 21]
    assert store.logs("j", 0, 10)[0].text == "hello"
    store.close()
