"""Delivering a run's events to the server: `ReporterClient`, used by `StudioCallback`, the worker, the Ray relay
and `finetune-studio train`.

`emit` costs the training thread a queue append (and a wake-up of the sender for an urgent event, only when
the sender is not already due to run): the background thread validates, numbers (`seq`, per attempt) and sends
them: a metric, an evaluation, a log line or the end as soon as it is emitted (a chart is waiting), at most
one request per 0.1 s (a high-rate stream goes in batches: each request costs this process's GIL about half a
millisecond), and progress within 0.2 s. Requests go over one kept-alive `http.client` connection (httpx cost
about 0.7 ms more per request, on the training process's GIL). When the server cannot be reached it appends
the batch to a spool file (JSON lines) and replays the spool, oldest first, as soon as a send succeeds again;
a failed send also reads the state folder's server.json again, since a restarted server has another port and
token. The server stores `(attempt, seq)` once, so a replay never duplicates a point. `flush()` returns once
everything emitted is on the server or on disk: the worker calls it before a checkpoint counts, so a crash
after a checkpoint loses no point before it. After 15 s without a send the client sends an empty batch, a
heartbeat for the server's watchdog.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from .discovery import read_server_json
from .wire import ReporterEvent, json_safe

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2  # the longest an event waits before it is sent (progress and system ride along)
MIN_INTERVAL = 0.1  # the shortest time between two sends: a high-rate stream is sent in batches
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
        self._seq = 0  # the last number given (by the sender, under _sending)
        # (type, time, data) as emitted: deque's append and popleft are thread-safe without a lock.
        self._queue: deque[tuple[str, float, dict[str, Any]]] = deque()
        self._sending = threading.Lock()  # one flush at a time: the numbering and the spool have one writer
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._closed = False
        self._warned = False
        self._last_send = time.monotonic()
        self._last_discovery = 0.0
        self._connection: http.client.HTTPConnection | None = None  # to _connected_to (never a proxy)
        self._connected_to: str | None = None
        self._prefix = ""
        self._thread = threading.Thread(target=self._run, name="studio-reporter", daemon=True)
        self._thread.start()

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        """Queue one event, stamped now. `data` is the client's from here on: the caller must not change
        it. An event the server would refuse is dropped with a warning when it is sent (and numbered
        without a gap): reporting never stops the training it reports on."""
        queue = self._queue
        queue.append((type_, time.time(), data))
        # Appended before the check: a sender already woken takes this event with the others.
        if (type_ in URGENT or len(queue) >= MAX_BATCH) and not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        """Send what is pending now, or spool it; returns when it is on the server or on disk."""
        self._flush()

    def close(self) -> None:
        """Send what is left (or spool it); returns when done. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=60)
        if self._connection is not None:
            self._connection.close()

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
            # close() ends the pause: the end of training does not wait for it.
            self._closing.wait(max(0.0, MIN_INTERVAL - (time.monotonic() - started)))

    def _take(self) -> list[dict[str, Any]]:
        """The queued events, validated and numbered, as JSON-ready dicts (under _sending)."""
        queue, events = self._queue, []
        for _ in range(len(queue)):  # what was queued now: a fast producer cannot keep this loop going
            type_, when, data = queue.popleft()
            try:
                event = ReporterEvent.model_validate(
                    {"seq": self._seq + 1, "type": type_, "time": when, "data": json_safe(data)})
            except ValidationError as error:
                log.warning("Fine-Tune Studio: a %s event was not sent: %s", type_, error.errors()[0]["msg"])
                continue
            self._seq += 1
            events.append(event.model_dump(mode="json"))
        return events

    def _flush(self) -> None:
        with self._sending:
            events = self._take()
            for start in range(0, len(events), MAX_BATCH):  # a burst (a fast loop) goes as several batches
                batch = {"attempt": self.attempt, "events": events[start:start + MAX_BATCH]}
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

    def _connect(self) -> http.client.HTTPConnection:
        assert self.url is not None
        if self._connection is None or self._connected_to != self.url:
            if self._connection is not None:
                self._connection.close()
            parts = urlsplit(self.url)
            kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            self._connection, self._connected_to = kind(parts.netloc, timeout=10), self.url
            self._prefix = parts.path.rstrip("/")  # a server behind a path
        return self._connection

    def _post(self, batch: dict[str, Any]) -> bool:
        body = json.dumps(batch, separators=(",", ":")).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        for _ in range(2):
            connection = self._connect()
            path = f"{self._prefix}/api/jobs/{self.job_id}/events"
            reused = connection.sock is not None
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                if reused:  # the server may have closed an idle kept-alive connection: once more, afresh
                    continue  # (a batch it did store is stored once: (attempt, seq))
                self._warn(f"Fine-Tune Studio server unreachable ({error}); spooling to {self.spool_path}")
                return False
            if response.status >= 300:
                self._warn(f"Fine-Tune Studio server answered {response.status} "
                           f"({text[:200].decode('utf-8', 'replace')}); spooling to {self.spool_path}")
                return False
            self._last_send = time.monotonic()
            return True
        return False

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
