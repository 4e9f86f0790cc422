"""Every job's record and the one path by which it changes.

`Jobs` creates managed jobs and attached runs, changes their state, and publishes each change (the
job's own stream gets a `state` event, the global stream a snapshot). Its methods are synchronous and
safe from any thread: the store serialises writes and the broker hands notifications to the event loop.
Async code calls them through a thread pool; nothing here blocks the event loop or touches it directly.
Launching and supervising workers is the scheduler's business (`scheduler.py`).
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from .broker import Broker
from .errors import Conflict
from .spec import JobSpec
from .store import Store
from .wire import FINISHED_STATES, RESUMABLE_STATES, Job, JobError, ReporterEvent, RunCreate


def new_id() -> str:
    """Job and capture ids: sortable by creation time, unique enough for one machine."""
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class Jobs:
    def __init__(self, store: Store, broker: Broker, data_dir: Path) -> None:
        self.store = store
        self.broker = broker
        self.data_dir = data_dir
        self._heard: dict[str, float] = {}  # attached run -> monotonic time of its last batch (watchdog.py)

    def folder(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    def get(self, job_id: str) -> Job:
        return self.store.get_job(job_id)

    def submit(self, spec: JobSpec) -> Job:
        """A queued managed job; the caller wakes the scheduler."""
        job_id = new_id()
        self.folder(job_id).mkdir(parents=True)
        job = Job(id=job_id, name=spec.name, task=spec.task, kind="managed", state="queued", attempt=1,
                  created_at=time.time(), output_dir=str(self.folder(job_id) / "model"), spec=spec)
        self.store.insert_job(job)
        self.broker.job_changed(job)
        return job

    def open_run(self, run: RunCreate) -> Job:
        """An attached run: a user's script reporting through StudioCallback."""
        now = time.time()
        job_id = new_id()
        if run.spec is not None:  # `finetune-studio train`: a managed job's layout, trained in the user's process
            self.folder(job_id).mkdir(parents=True)
            job = Job(id=job_id, name=run.spec.name, task=run.spec.task, kind="attached", state="running",
                      attempt=1, created_at=now, started_at=now, device=run.device,
                      output_dir=str(self.folder(job_id) / "model"), spec=run.spec)
        else:
            job = Job(id=job_id, name=run.name, task=run.task, kind="attached", state="running", attempt=1,
                      created_at=now, started_at=now, device=run.device, output_dir=run.output_dir,
                      training_args=run.training_args)
        self.store.insert_job(job, pid=run.pid)
        self.broker.job_changed(job)
        return job

    def change(self, job_id: str, **fields: Any) -> Job:
        """Set fields of a job and publish the change: the one way a job's state changes."""
        job = self.store.update_job(job_id, **fields)
        if "state" in fields:
            self.store.append(job_id, [("state", job.model_dump(mode="json"))])
            self.broker.notify(job_id)
        self.broker.job_changed(job)
        return job

    def finish_run(self, job_id: str, state: str, error: JobError | None) -> Job:
        """An attached run reported its end; a managed job's end is the scheduler's to record."""
        job = self.get(job_id)
        if job.kind != "attached" or job.state in FINISHED_STATES:
            return job
        self._heard.pop(job_id, None)
        return self.change(job_id, state=state, finished_at=time.time(), pid=None,
                           error=error.model_dump() if error else None)

    def last_heard(self, job_id: str, default: float) -> float:
        """When (monotonic) the attached run last sent a batch; `default` (and remembered) if not since
        this server started."""
        return self._heard.setdefault(job_id, default)

    def resume(self, job_id: str) -> Job:
        """Queue a new attempt; the caller wakes the scheduler."""
        job = self.get(job_id)
        if job.kind != "managed" or job.state not in RESUMABLE_STATES:
            raise Conflict(f"job {job_id} is {job.state}; only failed, cancelled or interrupted managed jobs "
                           "can be resumed")
        return self.change(job_id, state="queued", attempt=job.attempt + 1, error=None, finished_at=None)

    def delete(self, job_id: str, files: bool) -> None:
        job = self.get(job_id)
        if job.state not in FINISHED_STATES:
            raise Conflict(f"job {job_id} is {job.state}; cancel it before deleting it")
        self.store.delete_job(job_id)
        if files and job.kind == "managed":
            shutil.rmtree(self.folder(job_id), ignore_errors=True)
        self.broker.notify(job_id)

    def events_stored(self, job: Job, stored: list[ReporterEvent]) -> None:
        """After a reporter's batch is stored: wake the job's subscribers; progress and evaluations show
        in job lists too; an attached run's `end` ends it. Any batch, an empty heartbeat too, shows that
        the run's script is alive."""
        if job.kind == "attached":
            self._heard[job.id] = time.monotonic()
        if not stored:
            return
        self.broker.notify(job.id)
        for end in (e for e in stored if e.type == "end"):
            error = end.data.get("error")
            self.finish_run(job.id, end.data.get("state", "completed"),
                            JobError.model_validate(error) if error else None)
        if {e.type for e in stored} & {"progress", "eval"} and job.state not in FINISHED_STATES:
            self.broker.job_changed(self.get(job.id))
