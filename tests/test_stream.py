"""SSE: a watcher that drops mid-run and reconnects with Last-Event-ID gets every event exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from conftest import RunningServer, start_server
from finetune_studio.client import parse_sse


def test_reconnect_with_last_event_id_receives_every_event_once(server: RunningServer,
                                                                tiny_spec: dict[str, Any]) -> None:
    job = server.client.submit(tiny_spec)
    headers = {"Authorization": f"Bearer {server.token}"}
    received = []
    with httpx.Client(base_url=server.url, headers=headers, trust_env=False, timeout=60) as http:
        with http.stream("GET", f"/api/jobs/{job.id}/stream") as response:
            for event in parse_sse(response.iter_lines()):
                received.append(event)
                if event.type == "metric" and event.data["step"] >= 5:
                    break  # the connection drops mid-run
        dropped_at = received[-1].seq
        while server.client.job(job.id).state not in ("completed", "failed"):
            pass_seq = server.client.job(job.id).progress.step
            if pass_seq > 15:
                break  # more happened while nobody listened
        with http.stream("GET", f"/api/jobs/{job.id}/stream", headers={"Last-Event-ID": str(dropped_at)}) as r:
            for event in parse_sse(r.iter_lines()):
                received.append(event)
                if event.type == "state" and event.data["state"] in ("completed", "failed"):
                    break
    seqs = [e.seq for e in received]
    assert seqs == list(range(1, len(seqs) + 1))
    steps = [e.data["step"] for e in received if e.type == "metric" and "train/loss" in e.data["values"]]
    assert steps == list(range(1, 41))
    assert received[-1].data["state"] == "completed"


def test_after_parameter_replays_from_the_store(server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["training"]["epochs"] = 1
    job = server.client.submit(tiny_spec)
    everything = list(server.client.stream(job.id))
    tail = list(server.client.stream(job.id, after=everything[-5].seq))
    assert [e.seq for e in tail] == [e.seq for e in everything[-4:]]


def test_global_stream_announces_each_state_change(server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["training"]["epochs"] = 1
    headers = {"Authorization": f"Bearer {server.token}"}
    states: list[str] = []
    with httpx.Client(base_url=server.url, headers=headers, trust_env=False, timeout=120) as http:
        with http.stream("GET", "/api/stream") as response:
            job = server.client.submit(tiny_spec)
            data_lines = (line for line in response.iter_lines() if line.startswith("data:"))
            for line in data_lines:
                snapshot = json.loads(line[5:])
                assert snapshot["id"] == job.id
                if not states or states[-1] != snapshot["state"]:
                    states.append(snapshot["state"])
                if snapshot["state"] == "completed":
                    break
    assert states == ["queued", "running", "completed"]


def test_unknown_job_stream_is_a_404_before_any_event(server: RunningServer) -> None:
    """It used to answer 200 with an empty body, and a client then reconnected forever."""
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, trust_env=False, timeout=30) as http:
        with http.stream("GET", "/api/jobs/no-such-job/stream") as response:
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/json")
            assert "no-such-job" in response.read().decode()


def test_global_stream_resumed_with_an_id_from_before_a_restart_delivers_the_next_change(
        server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    """Ids restarted at 0 with each server, so an old id skipped the new server's first changes."""
    tiny_spec["training"].update(epochs=1, max_steps=2)
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, trust_env=False, timeout=60) as http:
        with http.stream("GET", "/api/stream") as response:
            first = server.client.submit(tiny_spec)
            old_id = next(line for line in response.iter_lines() if line.startswith("id:"))[3:].strip()
    server.wait_for(first.id)
    server.stop()
    restarted = start_server(server.data_dir)
    server.process, server.client, server.token = restarted.process, restarted.client, restarted.token
    headers = {"Authorization": f"Bearer {server.token}", "Last-Event-ID": old_id}
    with httpx.Client(base_url=restarted.url, headers=headers, trust_env=False, timeout=60) as http:
        with http.stream("GET", "/api/stream") as response:
            snapshots = parse_states(response.iter_lines())
            assert next(snapshots) == (first.id, "completed")  # the current snapshot of every job
            second = server.client.submit(tiny_spec)
            assert next(snapshots) == (second.id, "queued")  # then the next change
    server.client.cancel(second.id)


def parse_states(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    for line in lines:
        if line.startswith("data:"):
            job = json.loads(line[5:])
            yield job["id"], job["state"]
