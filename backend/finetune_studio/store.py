"""SQLite store: jobs, their event log (metrics, progress, evals, logs, states) and metric points.

One writer: every write runs on one thread through one connection (`_Writer`), in order; readers use
their own connection per thread. WAL lets readers go on while the writer commits. Metric points and
their min/max pyramid live in `pyramid.py`: keyed by (series, step), so a resumed attempt that logs a
step again replaces the point and a curve never holds a step twice. Events are numbered per job (`seq`,
the SSE id); a reporter's `(attempt, seq)` is unique, so a replayed batch is stored once. A reporter's
batch is one transaction: one query for the seqs already stored, one executemany per table.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pydantic_core
from pydantic import RootModel, ValidationError

from . import pyramid
from .errors import NotFound
from .wire import Job, LogLine, Progress, ReporterEvent, Series, StreamEvent, finite

T = TypeVar("T")
log = logging.getLogger(__name__)
_to_json = json.JSONEncoder(allow_nan=False).encode  # json.dumps(allow_nan=False) builds an encoder per call
_POINT_TYPES = frozenset({"metric", "eval", "system"})


def _data_json(data: dict[str, Any]) -> str:
    """A reporter event's data as stored: checked already (ReporterEvent), so pydantic-core's encoder, about
    four times faster than json's; a non-finite float, which checked data does not hold, goes out as null."""
    return pydantic_core.to_json(data, inf_nan_mode="null").decode()

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    task TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    progress TEXT NOT NULL DEFAULT '{}',
    device TEXT,
    output_dir TEXT NOT NULL,
    error TEXT,
    best_metric TEXT,
    spec TEXT NOT NULL,
    pid INTEGER,
    training_args TEXT
);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    time REAL NOT NULL,
    data TEXT NOT NULL,
    src_attempt INTEGER,
    src_seq INTEGER,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_source ON events (job_id, src_attempt, src_seq)
    WHERE src_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_type ON events (job_id, type, seq);
-- captured tensors (captures.py): the arrays live in tensors/<id>.safetensors beside the database
CREATE TABLE IF NOT EXISTS tensors (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    bytes INTEGER NOT NULL,
    summary TEXT NOT NULL,
    view TEXT NOT NULL
);
"""

JOB_COLUMNS = ("id name task kind state attempt created_at started_at finished_at progress device "
               "output_dir error best_metric spec training_args").split()
_JSON_COLUMNS = {"progress", "error", "best_metric", "spec", "training_args"}
# Columns added after a state folder may have been created: (table, column, type).
_ADDED_COLUMNS = [("jobs", "training_args", "TEXT")]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class _Writer(threading.Thread):
    """Runs write functions one at a time on its own connection."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="studio-store-writer", daemon=True)
        self.conn = _connect(path)
        self.conn.executescript(SCHEMA + pyramid.SCHEMA)
        for table, column, type_ in _ADDED_COLUMNS:
            present = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {type_}")
        with self.conn:
            pyramid.migrate(self.conn)
        self.jobs: queue.Queue[tuple[Callable[[sqlite3.Connection], Any], Future[Any]] | None] = queue.Queue()

    def run(self) -> None:
        while (item := self.jobs.get()) is not None:
            fn, future = item
            try:
                with self.conn:
                    result = fn(self.conn)
            except BaseException as error:  # handed to the caller, who raises it
                future.set_exception(error)
            else:
                future.set_result(result)
        self.conn.close()


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = _Writer(path)
        self._writer.start()
        self._local = threading.local()
        self._last_seq: dict[str, int] = {}  # touched by the writer thread only

    def close(self) -> None:
        self._writer.jobs.put(None)
        self._writer.join(timeout=10)

    # -- plumbing ------------------------------------------------------------------------------
    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        future: Future[T] = Future()
        self._writer.jobs.put((fn, future))
        return future

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self.submit(fn).result()

    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
        return conn

    # -- jobs ----------------------------------------------------------------------------------
    def insert_job(self, job: Job, pid: int | None = None) -> None:
        row = _job_row(job)
        columns = [*JOB_COLUMNS, "pid"]
        placeholders = ", ".join("?" for _ in columns)
        self.write(lambda c: c.execute(f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({placeholders})",
                                       [*(row[k] for k in JOB_COLUMNS), pid]))

    def update_job(self, job_id: str, **fields: Any) -> Job:
        """Set columns of one job; returns the job as stored afterwards."""
        def run(conn: sqlite3.Connection) -> Job:
            if fields:
                values = [json.dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in fields.items()]
                conn.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                             [*values, job_id])
            return _get_job(conn, job_id)
        return self.write(run)

    def get_job(self, job_id: str) -> Job:
        return _get_job(self.reader(), job_id)

    def list_jobs(self, states: Iterable[str] | None = None) -> list[Job]:
        sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"
        params: list[Any] = []
        if states is not None:
            states = list(states)
            sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
            params = states
        rows = self.reader().execute(sql + " ORDER BY created_at DESC", params).fetchall()
        jobs = []
        for row in rows:
            try:
                jobs.append(_job_from_row(row))
            except ValueError as error:  # a damaged row never takes the listing (or the start) down
                log.error("job %s in %s is unreadable and left out: %s", row[0], self.path, error)
        return jobs

    def job_pid(self, job_id: str) -> int | None:
        row = self.reader().execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    def delete_job(self, job_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            pyramid.delete(conn, job_id)
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            self._last_seq.pop(job_id, None)
        self.write(run)

    # -- events --------------------------------------------------------------------------------
    def append(self, job_id: str, items: list[tuple[str, dict[str, Any]]]) -> list[StreamEvent]:
        """Append server-made events (logs, states); returns them numbered."""
        now = time.time()
        return self.write(lambda c: [e for e in (self._append_one(c, job_id, t, now, d, None, None)
                                                 for t, d in items) if e is not None])

    def ingest(self, job_id: str, attempt: int, events: list[ReporterEvent]) -> list[ReporterEvent]:
        """Store a reporter's batch (one transaction, one executemany per table); events already stored (same
        attempt and seq) are skipped. Returns the events stored, as given: subscribers read them, numbered,
        from the store."""
        def run(conn: sqlite3.Connection) -> list[ReporterEvent]:
            if not events:
                return []
            seqs = [e.seq for e in events]
            known = {row[0] for row in conn.execute(
                "SELECT src_seq FROM events WHERE job_id = ? AND src_attempt = ? AND src_seq BETWEEN ? AND ?",
                (job_id, attempt, min(seqs), max(seqs)))}
            fresh = []
            for e in events:
                if e.seq not in known:
                    known.add(e.seq)
                    fresh.append(e)
            if not fresh:
                return []
            first = self._next_seq(conn, job_id, len(fresh))
            conn.executemany("INSERT INTO events (job_id, seq, type, time, data, src_attempt, src_seq) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(job_id, seq, e.type, e.time, _data_json(e.data), attempt, e.seq)
                              for seq, e in enumerate(fresh, first)])
            self._apply(conn, job_id, fresh)
            return fresh
        return self.write(run)

    def _append_one(self, conn: sqlite3.Connection, job_id: str, type_: str, when: float,
                    data: dict[str, Any], src_attempt: int | None, src_seq: int | None) -> StreamEvent | None:
        if src_seq is not None and conn.execute(
                "SELECT 1 FROM events WHERE job_id = ? AND src_attempt = ? AND src_seq = ?",
                (job_id, src_attempt, src_seq)).fetchone():
            return None
        seq = self._next_seq(conn, job_id, 1)
        conn.execute("INSERT INTO events (job_id, seq, type, time, data, src_attempt, src_seq) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (job_id, seq, type_, when, _to_json(data), src_attempt, src_seq))
        return StreamEvent(seq=seq, type=type_, time=when, data=data)

    def _next_seq(self, conn: sqlite3.Connection, job_id: str, count: int) -> int:
        """The first of `count` new seqs of the job."""
        last = self._last_seq.get(job_id)
        if last is None:
            last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?",
                                (job_id,)).fetchone()[0]
        self._last_seq[job_id] = last + count
        return last + 1

    def _apply(self, conn: sqlite3.Connection, job_id: str, events: list[ReporterEvent]) -> None:
        """Derive the queryable state of a reporter's events: metric points, progress, best metric."""
        points: dict[str, list[pyramid.Point]] = {}
        progress = None
        for event in events:
            type_, data, when = event.type, event.data, event.time
            if type_ in _POINT_TYPES:
                step = data["step"]
                # validated (wire.events._Values): each value a finite float or null (NaN, ±inf)
                for name, value in data["values"].items():
                    rows = points.get(name)
                    if rows is None:
                        rows = points[name] = []
                    rows.append((step, value, when))
                if type_ == "eval":
                    _update_best(conn, job_id, data["values"])
            elif type_ == "progress":
                progress = data
        pyramid.write(conn, job_id, points)
        if progress is not None:  # only the last one shows
            conn.execute("UPDATE jobs SET progress = ? WHERE id = ?", (json.dumps(progress), job_id))

    def events_after(self, job_id: str, after: int, limit: int = 5000,
                     types: tuple[str, ...] | None = None) -> list[StreamEvent]:
        sql = "SELECT seq, type, time, data FROM events WHERE job_id = ? AND seq > ?"
        params: list[Any] = [job_id, after]
        if types:
            # SQLite picks the primary key for ORDER BY seq and walks every event of the job (0.4 s for the
            # anomalies of a 1M-point run); the type index finds them in microseconds.
            sql = sql.replace("FROM events", "FROM events INDEXED BY events_by_type")
            sql += f" AND type IN ({', '.join('?' for _ in types)})"
            params += list(types)
        rows = self.reader().execute(sql + " ORDER BY seq LIMIT ?", [*params, limit]).fetchall()
        return [StreamEvent(seq=s, type=t, time=w, data=json.loads(d)) for s, t, w, d in rows]

    def last_seq(self, job_id: str) -> int:
        row = self.reader().execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?", (job_id,)).fetchone()
        return int(row[0])

    def latest_eval(self, job_id: str) -> StreamEvent | None:
        """The job's last `eval` event (its values and details: samples, confusion matrix...)."""
        row = self.reader().execute("SELECT seq, type, time, data FROM events WHERE job_id = ? AND type = 'eval' "
                                    "ORDER BY seq DESC LIMIT 1", (job_id,)).fetchone()
        return None if row is None else StreamEvent(seq=row[0], type=row[1], time=row[2], data=json.loads(row[3]))

    def logs(self, job_id: str, after: int, limit: int) -> list[LogLine]:
        return [LogLine(seq=e.seq, time=e.time, **e.data)
                for e in self.events_after(job_id, after, limit, types=("log",))]

    # -- metrics ---------------------------------------------------------------------------------
    def metric_names(self, job_id: str) -> list[str]:
        return pyramid.names(self.reader(), job_id)

    def series(self, job_id: str, name: str, max_points: int, from_step: int | None = None,
               to_step: int | None = None) -> tuple[Series, int]:
        """About `max_points` points of a series over from_step..to_step (inclusive), each bucket's min,
        max and first null kept (spikes stay), raw once the range holds at most max_points; and the
        series' point count."""
        conn = self.reader()
        conn.execute("BEGIN")  # one snapshot: a write between the reads could mix two states
        try:
            rows, total = pyramid.read(conn, job_id, name, max_points, from_step, to_step)
        finally:
            conn.rollback()
        return Series(step=[r[0] for r in rows], value=[r[1] for r in rows], time=[r[2] for r in rows]), total


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _lower_is_better(name: str) -> bool:
    return "loss" in name or "perplexity" in name or name.endswith("runtime")


def _update_best(conn: sqlite3.Connection, job_id: str, values: dict[str, Any]) -> None:
    row = conn.execute("SELECT best_metric FROM jobs WHERE id = ?", (job_id,)).fetchone()
    best: dict[str, float] = json.loads(row[0]) if row and row[0] else {}
    for name, raw in values.items():
        value = finite(_as_float(raw))
        if value is None or "runtime" in name or "per_second" in name:
            continue
        old = best.get(name)
        if old is None or (value < old if _lower_is_better(name) else value > old):
            best[name] = value
    conn.execute("UPDATE jobs SET best_metric = ? WHERE id = ?", (json.dumps(best), job_id))


def _job_row(job: Job) -> dict[str, Any]:
    row = job.model_dump(mode="json")
    # spec is NOT NULL in state folders made by 0.1: an attached run's missing spec is stored as JSON null
    return {k: json.dumps(row[k]) if k in _JSON_COLUMNS and (row[k] is not None or k == "spec") else row[k]
            for k in JOB_COLUMNS}


def _job_from_row(row: tuple[Any, ...]) -> Job:
    data = dict(zip(JOB_COLUMNS, row, strict=True))
    for key in _JSON_COLUMNS:
        if data[key] is not None:
            data[key] = json.loads(data[key])
    if data["kind"] == "attached" and data["spec"] is not None and "model" not in data["spec"]:
        data["spec"] = None  # state folders of 0.1 kept an attached run's arguments there
    # What reporters derived (progress, best values) is not worth losing the job for: a damaged value
    # (stored before events were checked) is reported and shown as none.
    for key, model in (("progress", Progress), ("best_metric", _BestMetric)):
        try:
            model.model_validate(data[key] if data[key] is not None else {})
        except ValidationError as error:
            log.warning("job %s: its stored %s is unreadable and left out: %s", data["id"], key, error)
            data[key] = {} if key == "progress" else None
    return Job.model_validate(data)


class _BestMetric(RootModel[dict[str, float]]):
    pass


def read_job(path: Path, job_id: str) -> Job:
    """One job, read from a state folder's database without a Store (the worker, another process)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return _get_job(conn, job_id)
    finally:
        conn.close()


def _get_job(conn: sqlite3.Connection, job_id: str) -> Job:
    row = conn.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id!r}", hint="GET /api/jobs lists the jobs that exist")
    return _job_from_row(row)
