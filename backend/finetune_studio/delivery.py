"""Delivering a run's events to the server: `ReporterClient`, used by `StudioCallback`, the worker, the
Ray relay and `finetune-studio train`.

The client numbers events per attempt (`seq`) and sends them from a background thread: a metric, an
evaluation, a log line or the end as soon as it is emitted (a chart is waiting), at most one request per
50 ms (a high-rate stream goes in batches), and progress within 0.2 s. When the server cannot be reached
it appends the batch to a spool file (JSON lines) and replays the spool, oldest first, as soon as a send
succeeds again; a failed send also reads the state folder's server.json again, since a restarted server
has another port and token. The server stores `(attempt, seq)` once, so a replay never duplicates a
point. `flush()` returns once everything emitted is on the server or on disk: the worker calls it before
a checkpoint counts, so a crash after a checkpoint loses no point before it. After 15 s without a send
the client sends an empty batch, a heartbeat for the server's watchdog.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from .discovery import read_server_json
from .wire import IngestBatch, ReporterEvent, json_safe

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2  # the longest an event waits before it is sent (progress and system ride along)
MIN_INTERVAL = 0.05  # the shortest time between two sends: a high-rate stream is sent in batches
MAX_BATCH = 1000
HEARTBEAT_SECONDS = 15.0  # an empty batch after this long without a send: the server's watchdog hears the run
REDISCOVER_SECONDS = 2.0  # at most one look at server.json per this long while sends fail
URGENT = frozenset({"metric", "eval", "log", "end"})  # sent as soon as emitted (a chart waits for them)


class ReporterClient:
    """Sends events of one job attempt; spools what cannot be sent.

    `state_dir` is the server's state folder: when a send fails, the client reads its server.json again
    (a restarted server has another port and token) and replays the spool there."""

    def __init__(self, url: str | None, token: str | None, job_id: str | None, attempt: int,
                 spool_path: Path, state_dir: Path | None = None) -> None:
        self.url, self.token, self.job_id, self.attempt = url, token, job_id, attempt
        self.spool_path = spool_path
        self.state_dir = state_dir
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self._seq = 0
        self._pending: list[ReporterEvent] = []
        self._lock = threading.Lock()  # guards _seq and _pending (taken by the training thread: kept short)
        self._sending = threading.Lock()  # one flush at a time: the spool has one writer
        self._wake = threading.Event()
        self._closed = False
        self._warned = False
        self._last_send = time.monotonic()
        self._last_discovery = 0.0
        self._http = httpx.Client(timeout=10, trust_env=False)  # loopback: never through a proxy
        self._thread = threading.Thread(target=self._run, name="studio-reporter", daemon=True)
        self._thread.start()

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        """Queue one event. An event the server would refuse is dropped with a warning: reporting never
        stops the training it reports on."""
        with self._lock:
            try:
                event = ReporterEvent.model_validate(
                    {"seq": self._seq + 1, "type": type_, "time": time.time(), "data": json_safe(data)})
            except ValidationError as error:
                log.warning("Fine-Tune Studio: a %s event was not sent: %s", type_, error.errors()[0]["msg"])
                return
            self._seq += 1
            self._pending.append(event)
            if type_ in URGENT or len(self._pending) >= MAX_BATCH:
                self._wake.set()

    def flush(self) -> None:
        """Send what is pending now, or spool it; returns when it is on the server or on disk."""
        self._flush()

    def close(self) -> None:
        """Send what is left (or spool it); returns when done. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=60)
        self._http.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            started = time.monotonic()
            self._flush()
            if self._closed:
                self._flush()
                return
            # Whatever arrives meanwhile waits for the next send: many points per request at high rates.
            time.sleep(max(0.0, MIN_INTERVAL - (time.monotonic() - started)))

    def _flush(self) -> None:
        with self._sending:
            with self._lock:
                events, self._pending = self._pending, []
            for start in range(0, len(events), MAX_BATCH):  # a burst (a fast loop) goes as several batches
                part = events[start:start + MAX_BATCH]
                batch = IngestBatch(attempt=self.attempt, events=part).model_dump(mode="json")
                if self.spool_path.exists() or not self._send(batch):
                    self._spool(batch)
            if self.spool_path.exists():
                self._replay()
            elif not events and time.monotonic() - self._last_send >= self.heartbeat_seconds:
                self._send({"attempt": self.attempt, "events": []})

    def _send(self, batch: dict[str, Any]) -> bool:
        if not self.url or not self.job_id:
            return False
        if self._post(batch):
            return True
        # A restarted server listens elsewhere, with another token: look again, and send there.
        return self._rediscover() and self._post(batch)

    def _post(self, batch: dict[str, Any]) -> bool:
        try:
            response = self._http.post(f"{self.url}/api/jobs/{self.job_id}/events", json=batch,
                                       headers={"Authorization": f"Bearer {self.token}"})
        except httpx.TransportError as error:
            self._warn(f"Fine-Tune Studio server unreachable ({error}); spooling to {self.spool_path}")
            return False
        if response.status_code >= 300:
            self._warn(f"Fine-Tune Studio server answered {response.status_code} ({response.text[:200]}); "
                       f"spooling to {self.spool_path}")
            return False
        self._last_send = time.monotonic()
        return True

    def _rediscover(self) -> bool:
        """Whether the state folder's server.json now names another live server (then it is used)."""
        now = time.monotonic()
        if self.state_dir is None or now - self._last_discovery < REDISCOVER_SECONDS:
            return False
        self._last_discovery = now
        server = read_server_json(self.state_dir)
        if server is None or (server.url, server.token) == (self.url, self.token):
            return False
        log.info("Fine-Tune Studio: the server is now at %s; sending there", server.url)
        self.url, self.token, self._warned = server.url, server.token, False
        return True

    def _spool(self, batch: dict[str, Any]) -> None:
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spool_path.open("ab") as handle:
            if handle.tell() and not self._ends_a_line():
                handle.write(b"\n")  # the last line was cut short by a kill: keep this one apart
            handle.write(json.dumps(batch).encode() + b"\n")

    def _ends_a_line(self) -> bool:
        with self.spool_path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def _replay(self) -> None:
        """Send the spool oldest first; keep what still fails (in order)."""
        if not self.url or not self.job_id:
            return
        lines = self.spool_path.read_text(encoding="utf-8").splitlines()
        for position, line in enumerate(lines):
            try:
                batch = json.loads(line) if line.strip() else None
            except ValueError:
                log.warning("Fine-Tune Studio: skipping a spooled batch cut short by a crash (%d bytes)", len(line))
                continue
            if batch is not None and not self._send(batch):
                rest = self.spool_path.with_name(self.spool_path.name + ".tmp")
                rest.write_text("\n".join(lines[position:]) + "\n", encoding="utf-8")
                os.replace(rest, self.spool_path)  # a kill meanwhile leaves the whole old spool, never half
                return
        self.spool_path.unlink()
        log.info("Fine-Tune Studio: delivered %d spooled batches", len(lines))

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(message)
