"""SSE: a watcher that drops mid-run and reconnects with Last-Event-ID gets every event exactly once."""

from __future__ import annotations

import json
from typing import Any

import httpx

from conftest import RunningServer
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
