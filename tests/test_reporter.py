"""The reporter and ingest: idempotent batches, spooling while the server is away, attached runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import RunningServer, start_server
from finetune_studio import delivery
from finetune_studio.client import StudioClient
from finetune_studio.delivery import ReporterClient


def _attached(server: RunningServer) -> str:
    return server.client.request("POST", "/api/runs", json={"name": "manual"})["id"]  # type: ignore[no-any-return]


def test_the_same_batch_twice_is_stored_once(server: RunningServer) -> None:
    job_id = _attached(server)
    batch = {"attempt": 1, "events": [
        {"seq": i, "type": "metric", "time": time.time(), "data": {"step": i, "values": {"train/loss": 1 / i}}}
        for i in range(1, 11)]}
    first = server.client.request("POST", f"/api/jobs/{job_id}/events", json=batch)
    again = server.client.request("POST", f"/api/jobs/{job_id}/events", json=batch)
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (10, 0, 10)
    series = server.client.metrics(job_id)["series"]["train/loss"]
    assert series["step"] == list(range(1, 11))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_reporter_spools_while_the_server_is_down_and_delivers_later(server: RunningServer,
                                                                      tmp_path: Path) -> None:
    job_id = _attached(server)
    spool = tmp_path / "spool.jsonl"
    down = ReporterClient(f"http://127.0.0.1:{_closed_port()}", server.token, job_id, 1, spool)
    for step in range(1, 101):
        down.emit("metric", {"step": step, "values": {"train/loss": 1.0 / step, "train/grad_norm": float("nan")}})
    down.close()
    assert spool.is_file() and server.client.metrics(job_id)["series"] == {}

    back = ReporterClient(server.url, server.token, job_id, 1, spool)
    back._seq = 100  # the same attempt goes on numbering where it stopped
    back.emit("metric", {"step": 101, "values": {"train/loss": 0.001}})
    back.close()
    assert not spool.exists()
    series = server.client.metrics(job_id)["series"]
    assert series["train/loss"]["step"] == list(range(1, 102))
    assert series["train/grad_norm"]["value"][0] is None  # a NaN point is kept, as null


def test_plain_trainer_script_with_studio_callback_becomes_an_attached_run(
        server: RunningServer, tiny_bert: Path, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from finetune_studio.testing.tiny_models import classification_dataset
        from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer,
                                  TrainingArguments, DataCollatorWithPadding)
        from finetune_studio import StudioCallback

        tokenizer = AutoTokenizer.from_pretrained({str(tiny_bert)!r})
        data = classification_dataset(tokenizer, 64)
        model = AutoModelForSequenceClassification.from_pretrained({str(tiny_bert)!r}, num_labels=2)
        args = TrainingArguments({str(tmp_path / "out")!r}, num_train_epochs=1, per_device_train_batch_size=8,
                                 logging_steps=1, report_to="none", save_strategy="no")
        Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer),
                callbacks=[StudioCallback(name="my script")]).train()
    """))
    # The script finds the server the way a user's does: .finetune-studio/server.json in its folder or above.
    project = server.data_dir.parent
    completed = subprocess.run([sys.executable, str(script)], cwd=project, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    [job] = [j for j in server.client.jobs() if j.kind == "attached"]
    assert job.name == "my script" and job.state == "completed"
    assert server.client.metrics(job.id)["series"]["train/loss"]["step"] == list(range(1, 9))


def test_callback_without_a_server_warns_once_and_never_stops_training(tiny_bert: Path, tmp_path: Path) -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from finetune_studio import StudioCallback

    callback = StudioCallback()
    args = TrainingArguments(str(tmp_path / "out"), report_to="none")
    state = TrainerState()
    state.max_steps = 10
    callback.on_train_begin(args, state, TrainerControl())
    for step in range(1, 4):
        state.global_step = step
        callback.on_log(args, state, TrainerControl(), logs={"loss": 0.5})
    callback.on_train_end(args, state, TrainerControl())
    spooled = (tmp_path / "out" / "finetune-studio-spool.jsonl").read_text().splitlines()
    assert len(spooled) >= 1 and '"train/loss"' in "".join(spooled)



def _arrivals(server: RunningServer, job_id: str, count: int) -> tuple[threading.Thread, list[tuple[float, Any]]]:
    """A subscriber of the job's SSE stream, in a thread: (arrival time, event) of the first `count` events."""
    arrived: list[tuple[float, Any]] = []
    client = StudioClient(server.url, server.token)

    def follow() -> None:
        for event in client.stream(job_id, until_finished=False):
            arrived.append((time.perf_counter(), event))
            if len(arrived) == count:
                client.close()
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(0.5)  # subscribed
    return thread, arrived


def test_posted_event_reaches_a_subscriber_without_waiting_for_a_timer(server: RunningServer) -> None:
    """Issue 12, the live path: ingest wakes the job's subscribers; nothing on the way polls."""
    job_id = _attached(server)
    thread, arrived = _arrivals(server, job_id, 5)
    sent = []
    for step in range(1, 6):
        sent.append(time.perf_counter())
        event = {"seq": step, "type": "metric", "time": time.time(), "data": {"step": step, "values": {"loss": 1.0}}}
        server.client.request("POST", f"/api/jobs/{job_id}/events", json={"attempt": 1, "events": [event]})
        time.sleep(0.1)
    thread.join(timeout=10)
    latencies = [got - posted for posted, (got, _) in zip(sent, arrived, strict=True)]
    print("ingest -> SSE latencies (ms):", [round(1000 * t, 1) for t in latencies])
    assert max(latencies) < 1.0  # a poll or the 15 s heartbeat would show


def test_reporter_sends_a_logged_metric_at_once(server: RunningServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: on_log -> point drawn took p50 134 ms, p95 219 ms because every event waited for the
    reporter's 0.2 s flush timer. A metric is sent when it is emitted; only progress waits."""
    monkeypatch.setattr(delivery, "FLUSH_SECONDS", 30.0)  # a metric that waited for the timer would miss
    job_id = _attached(server)
    thread, arrived = _arrivals(server, job_id, 10)
    client = ReporterClient(server.url, server.token, job_id, 1, tmp_path / "spool.jsonl")
    emitted = []
    try:
        time.sleep(0.3)  # the client's thread waits with the patched timer now
        for step in range(1, 11):
            emitted.append(time.perf_counter())
            client.emit("metric", {"step": step, "values": {"train/loss": 1.0 / step}})
            time.sleep(0.1)  # 10 logs/s
        thread.join(timeout=10)
    finally:
        client.close()
    latencies = sorted(got - sent for sent, (got, _) in zip(emitted, arrived, strict=True))
    print("emit -> SSE latencies (ms):", [round(1000 * t, 1) for t in latencies])
    assert [event.data["step"] for _, event in arrived] == list(range(1, 11))
    assert latencies[-1] < 2.0


def test_flush_returns_once_the_events_are_on_the_server(server: RunningServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """on_save (and the worker, before a checkpoint counts) flushes: a crash right after loses nothing."""
    monkeypatch.setattr(delivery, "FLUSH_SECONDS", 30.0)
    job_id = _attached(server)
    client = ReporterClient(server.url, server.token, job_id, 1, tmp_path / "spool.jsonl")
    try:
        time.sleep(0.3)
        client.emit("progress", {"step": 7, "max_steps": 10, "epoch": 0.7})  # not urgent: waits for the timer
        client.flush()
        assert server.client.job(job_id).progress.step == 7
    finally:
        client.close()


def test_reporter_follows_a_restarted_server_and_replays_its_spool(tmp_path: Path) -> None:
    """Issue 10: after a server restart (new port, new token) the reporter kept sending to the old one.
    It reads the state folder's server.json again and replays what it spooled meanwhile, each step once."""
    data_dir = tmp_path / ".finetune-studio"
    first = start_server(data_dir)
    job_id = first.client.request("POST", "/api/runs", json={"name": "long", "pid": os.getpid()})["id"]
    client = ReporterClient(first.url, first.token, job_id, 1, tmp_path / "spool.jsonl", state_dir=data_dir)
    second = None
    try:
        for step in range(1, 51):
            client.emit("metric", {"step": step, "values": {"train/loss": 1.0 / step}})
        client.flush()
        first.stop(signal.SIGKILL)
        for step in range(51, 101):  # while no server runs: spooled
            client.emit("metric", {"step": step, "values": {"train/loss": 1.0 / step}})
        client.flush()
        assert client.spool_path.is_file()
        second = start_server(data_dir)
        assert (second.url, second.token) != (first.url, first.token)
        for step in range(101, 151):
            client.emit("metric", {"step": step, "values": {"train/loss": 1.0 / step}})
        deadline = time.time() + 30
        while client.spool_path.exists() or client.url != second.url:
            assert time.time() < deadline, "the spool was not replayed to the restarted server"
            time.sleep(0.1)
        client.flush()
        steps = second.client.metrics(job_id)["series"]["train/loss"]["step"]
        assert steps == list(range(1, 151))
    finally:
        client.close()
        if second is not None:
            second.stop()


def test_an_earlier_offline_runs_spool_is_not_replayed_into_a_new_run(
        server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both runs spooled to <output_dir>/finetune-studio-spool.jsonl: a script run without a server left
    seq 1..n there, the next run replayed them into its own job, and its own seq 1..n were then dropped
    as duplicates (its curve showed the earlier run's points)."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from finetune_studio import StudioCallback

    def run(loss: float) -> None:
        callback = StudioCallback()
        args = TrainingArguments(str(tmp_path / "out"), report_to="none")
        state = TrainerState()
        state.max_steps = 3
        callback.on_train_begin(args, state, TrainerControl())
        for step in range(1, 4):
            state.global_step = step
            callback.on_log(args, state, TrainerControl(), logs={"loss": loss})
        callback.on_train_end(args, state, TrainerControl())

    run(loss=9.0)  # no server found from the empty working folder: spooled
    monkeypatch.chdir(server.data_dir.parent)
    run(loss=1.0)
    [job] = [j for j in server.client.jobs() if j.kind == "attached"]
    assert server.client.metrics(job.id)["series"]["train/loss"]["value"] == [1.0, 1.0, 1.0]


def test_a_burst_beyond_one_batch_is_spooled_and_delivered_whole(server: RunningServer, tmp_path: Path) -> None:
    """25,000 events pending at once (a fast loop while the server is away) were one batch over the
    server's 10,000-event limit: the reporter failed to spool them. They go as several batches now."""
    job_id = _attached(server)
    spool = tmp_path / "spool.jsonl"
    offline = ReporterClient(None, None, job_id, 1, spool)
    for step in range(1, 25_001):
        offline.emit("metric", {"step": step, "values": {"train/loss": 1.0 / step}})
    offline.close()
    assert len(spool.read_text(encoding="utf-8").splitlines()) >= 25

    back = ReporterClient(server.url, server.token, job_id, 1, spool)
    back.close()
    assert not spool.exists()
    metrics = server.client.metrics(job_id, max_points=100_000)
    assert metrics["total_points"]["train/loss"] == 25_000


def test_an_event_the_server_would_refuse_is_dropped_not_raised(server: RunningServer, tmp_path: Path) -> None:
    """A user's `trainer.log({"note": "text"})` must not stop their training: the reporter drops what the
    server's validation would refuse, and numbers the rest without a gap."""
    job_id = _attached(server)
    client = ReporterClient(server.url, server.token, job_id, 1, tmp_path / "spool.jsonl")
    client.emit("metric", {"step": 1, "values": {"train/loss": 0.5}})
    client.emit("metric", {"step": 2, "values": {"train/note": "not a number"}})  # refused by the wire model
    client.emit("progress", {"step": "abc"})
    client.emit("metric", {"step": 3, "values": {"train/loss": 0.25}})
    client.close()
    assert not (tmp_path / "spool.jsonl").exists()  # nothing was refused by the server either
    assert server.client.metrics(job_id)["series"]["train/loss"]["step"] == [1, 3]


def test_a_burst_of_1000_logs_arrives_whole_in_order_in_few_requests(server: RunningServer, tmp_path: Path) -> None:
    """Issue 12, reporter overhead: each request costs the training process's GIL about half a millisecond,
    so a fast loop's metrics go in batches (at most one request per MIN_INTERVAL); each once, in order."""
    posts = []

    class Counting(ReporterClient):  # the real client, its requests counted
        def _post(self, batch: dict[str, Any]) -> bool:
            posts.append(len(batch["events"]))
            return super()._post(batch)

    job_id = _attached(server)
    client = Counting(server.url, server.token, job_id, 1, tmp_path / "spool.jsonl")
    started = time.monotonic()
    for step in range(1, 1001):
        client.emit("metric", {"step": step, "values": {"train/loss": 1.0 / step}})
    client.close()
    elapsed = time.monotonic() - started
    events = server.client.request("GET", f"/api/jobs/{job_id}/events",
                                   params={"types": "metric", "limit": 2000})["events"]
    assert [e["data"]["step"] for e in events] == list(range(1, 1001))  # stored in the order emitted, once
    assert sum(posts) == 1000 and len(posts) <= 2 + elapsed / delivery.MIN_INTERVAL, (posts, elapsed)
