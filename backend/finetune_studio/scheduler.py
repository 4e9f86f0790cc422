"""Queue -> device slots -> worker processes; cancellation, resume, reconciliation at start.

Lifecycle of a managed job: queued -> running -> (cancelling ->) completed | failed | cancelled.
One job per GPU; with no GPU, one job at a time on the CPU. The worker writes `result.json` into its
job folder before it exits; a worker that dies without one failed, and its last stderr lines become the
job's error. At start, jobs left running by a dead server become `interrupted` (resumable from their
last checkpoint); at shutdown, running workers get SIGTERM (they save a checkpoint) and are marked
`interrupted` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from .broker import Broker
from .errors import Conflict, FieldProblem, SpecError
from .executors import local
from .spec import JobSpec, check_files
from .store import Store
from .wire import FINISHED_STATES, RESUMABLE_STATES, Device, Job, JobError, RunCreate

log = logging.getLogger(__name__)

CANCEL_GRACE_SECONDS = 120.0
STDERR_TAIL_LINES = 25


@dataclass
class _Running:
    job_id: str
    slots: list[int | str]
    process: local.LocalProcess
    cancel_requested: bool = False
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def gpu_count() -> int:
    if os.environ.get("FINETUNE_STUDIO_FORCE_CPU") == "1":
        return 0
    if sys.platform == "linux" and not any(Path("/dev").glob("nvidia[0-9]*")):
        return 0  # no NVIDIA device node: spare the server the seconds of importing torch
    import torch

    return int(torch.cuda.device_count())  # NVML only: does not create a CUDA context here


class Scheduler:
    def __init__(self, store: Store, broker: Broker, data_dir: Path, url: str, token: str) -> None:
        self.store = store
        self.broker = broker
        self.data_dir = data_dir
        self.url = url
        self.token = token
        self.gpus = list(range(gpu_count()))
        self._slots: dict[int | str, str | None] = {g: None for g in self.gpus} or {"cpu": None}
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        await run_in_threadpool(self._reconcile)
        self._loop_task = asyncio.create_task(self._dispatch_loop(), name="studio-scheduler")
        self._wake.set()

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for running in list(self._running.values()):
            running.process.terminate()
        waits = [asyncio.wait_for(r.process.wait(), CANCEL_GRACE_SECONDS) for r in self._running.values()]
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, TimeoutError):
                log.warning("a worker did not stop within %ss; killing it", CANCEL_GRACE_SECONDS)
        for running in list(self._running.values()):
            running.process.kill()

    def _reconcile(self) -> None:
        for job in self.store.list_jobs(states=("running", "cancelling")):
            pid = self.store.job_pid(job.id)
            if pid_alive(pid) and job.kind == "managed":
                # Its pipes went with the old server: stop it so it saves a checkpoint, then resume.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)  # type: ignore[arg-type]
            elif pid_alive(pid):
                continue  # an attached script is still running and reporting
            self._set(job.id, state="interrupted", finished_at=time.time(), pid=None,
                      error=JobError(type="interrupted", message="the server stopped while this job ran",
                                     hint="Resume continues from the last checkpoint").model_dump())

    # -- requests ------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    def submit(self, spec: JobSpec) -> Job:
        check_files(spec)
        self._check_resources(spec)
        job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        job_dir = self.job_dir(job_id)
        job_dir.mkdir(parents=True)
        (job_dir / "spec.json").write_text(spec.model_dump_json(indent=2), encoding="utf-8")
        job = Job(id=job_id, name=spec.name, task=spec.task, kind="managed", state="queued", attempt=1,
                  created_at=time.time(), output_dir=str(job_dir / "model"), spec=spec.model_dump(mode="json"))
        self.store.insert_job(job)
        self._publish(job)
        self._wake.set()
        return job

    def open_run(self, run: RunCreate, pid: int | None) -> Job:
        job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        now = time.time()
        job = Job(id=job_id, name=run.name, task=run.task, kind="attached", state="running", attempt=1,
                  created_at=now, started_at=now, device=None, output_dir=run.output_dir,
                  spec={"config": run.config})
        self.store.insert_job(job)
        if pid:
            self.store.update_job(job_id, pid=pid)
        self._publish(job)
        return job

    def finish_run(self, job_id: str, state: str, error: dict[str, Any] | None) -> Job:
        job = self.store.get_job(job_id)
        if job.kind != "attached" or job.state in FINISHED_STATES:
            return job
        return self._set(job_id, state=state, finished_at=time.time(), error=error, pid=None)

    def cancel(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job.state == "queued":
            return self._set(job_id, state="cancelled", finished_at=time.time())
        running = self._running.get(job_id)
        if running is None or job.state not in ("running", "cancelling"):
            raise Conflict(f"job {job_id} is {job.state}; only queued or running jobs can be cancelled")
        running.cancel_requested = True
        running.process.terminate()
        asyncio.get_running_loop().call_later(CANCEL_GRACE_SECONDS, running.process.kill)
        return self._set(job_id, state="cancelling")

    def resume(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job.kind != "managed" or job.state not in RESUMABLE_STATES:
            raise Conflict(f"job {job_id} is {job.state}; only failed, cancelled or interrupted managed jobs "
                           "can be resumed")
        updated = self._set(job_id, state="queued", attempt=job.attempt + 1, error=None, finished_at=None)
        self._wake.set()
        return updated

    def delete(self, job_id: str, files: bool) -> None:
        job = self.store.get_job(job_id)
        if job.state not in FINISHED_STATES:
            raise Conflict(f"job {job_id} is {job.state}; cancel it before deleting it")
        self.store.delete_job(job_id)
        if files and job.kind == "managed":
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        self.broker.notify(job_id)

    def devices(self) -> list[Device]:
        if not self.gpus:
            return [Device(index=None, kind="cpu", name=f"CPU ({os.cpu_count()} cores)",
                           busy_job=self._slots.get("cpu"))]
        import torch

        devices = []
        for index in self.gpus:
            free, total = torch.cuda.mem_get_info(index) if torch.cuda.is_initialized() else (None, None)
            devices.append(Device(
                index=index, kind="cuda", name=torch.cuda.get_device_name(index),
                memory_total_mb=total / 2**20 if total else
                torch.cuda.get_device_properties(index).total_memory / 2**20,
                memory_used_mb=(total - free) / 2**20 if total and free else None,
                utilization=_gpu_utilization(index), busy_job=self._slots.get(index)))
        return devices

    def _check_resources(self, spec: JobSpec) -> None:
        wanted = spec.resources.gpus
        if spec.resources.executor == "ray":
            raise SpecError([FieldProblem(
                "resources.executor", "the Ray executor is not available in this version: use \"local\" "
                "(one machine, one job per GPU)")])
        if isinstance(wanted, int) and wanted > max(1, len(self.gpus)):
            raise SpecError([FieldProblem(
                "resources.gpus", f"asks for {wanted} GPUs but this machine has {len(self.gpus)}: "
                f"use at most {max(1, len(self.gpus))}")])

    # -- dispatch ------------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            queued = await run_in_threadpool(self.store.list_jobs, ("queued",))
            for job in sorted(queued, key=lambda j: j.created_at):
                slots = self._free_slots(job)
                if slots is None:
                    break  # first come, first served: later jobs wait behind this one
                await self._launch(job, slots)

    def _free_slots(self, job: Job) -> list[int | str] | None:
        free = [s for s, busy in self._slots.items() if busy is None]
        wanted = job.spec.get("resources", {}).get("gpus", 1)
        if not self.gpus:
            return free[:1] or None
        count = len(self.gpus) if wanted == "all" else max(1, int(wanted))
        return free[:count] if len(free) >= count else None

    async def _launch(self, job: Job, slots: list[int | str]) -> None:
        for slot in slots:
            self._slots[slot] = job.id
        gpus = [s for s in slots if isinstance(s, int)]
        env = dict(os.environ, FINETUNE_STUDIO_URL=self.url, FINETUNE_STUDIO_TOKEN=self.token,
                   FINETUNE_STUDIO_JOB=job.id, FINETUNE_STUDIO_ATTEMPT=str(job.attempt),
                   FINETUNE_STUDIO_HOME=str(self.data_dir))
        job_dir = self.job_dir(job.id)
        (job_dir / "result.json").unlink(missing_ok=True)
        try:
            process = await local.start(job_dir, env, gpus)
        except OSError as error:
            self._free(job.id)
            self._set(job.id, state="failed", finished_at=time.time(), error=JobError(
                type="start_failed", message=f"could not start the worker: {error}",
                hint="check that this Python environment has finetune-studio installed").model_dump())
            return
        running = _Running(job.id, slots, process)
        self._running[job.id] = running
        device = ",".join(f"cuda:{g}" for g in gpus) or "cpu"
        self._set(job.id, state="running", started_at=job.started_at or time.time(), device=device,
                  pid=process.pid)
        asyncio.create_task(self._supervise(running), name=f"studio-worker-{job.id}")

    async def _supervise(self, running: _Running) -> None:
        pumps = [asyncio.create_task(self._pump(running, running.process.stdout, "stdout")),
                 asyncio.create_task(self._pump(running, running.process.stderr, "stderr"))]
        code = await running.process.wait()
        await asyncio.gather(*pumps)
        self._running.pop(running.job_id, None)
        self._free(running.job_id)
        state, error = self._outcome(running, code)
        self._set(running.job_id, state=state, finished_at=time.time(), pid=None,
                  error=error.model_dump() if error else None)
        self._wake.set()

    def _outcome(self, running: _Running, code: int) -> tuple[str, JobError | None]:
        result_file = self.job_dir(running.job_id) / "result.json"
        result: dict[str, Any] = {}
        if result_file.is_file():
            result = json.loads(result_file.read_text(encoding="utf-8"))
        if result.get("state") == "completed" and code == 0:
            return "completed", None
        if running.cancel_requested:
            return "cancelled", None
        if result.get("error"):
            return "failed", JobError.model_validate(result["error"])
        tail = "\n".join(running.stderr_tail) or "(no output on stderr)"
        reason = f"signal {-code}" if code < 0 else f"exit code {code}"
        return "failed", JobError(type="worker_crashed", message=f"the worker died ({reason}). Last stderr "
                                  f"lines:\n{tail}", hint="Resume continues from the last checkpoint")

    async def _pump(self, running: _Running, reader: asyncio.StreamReader, stream: str) -> None:
        """Turn a child's output into log events, a batch per read burst (never one write per line)."""
        pending: list[tuple[str, dict[str, Any]]] = []
        while True:
            try:
                # While lines wait to be stored, give the next one 50 ms to join the batch.
                raw = await (asyncio.wait_for(reader.readline(), 0.05) if pending else reader.readline())
            except TimeoutError:
                raw = None
            if raw:
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                pending.append(("log", {"stream": stream, "text": text}))
                if stream == "stderr":
                    running.stderr_tail.append(text)
            if pending and (raw is None or raw == b"" or len(pending) >= 200):
                await run_in_threadpool(self.store.append, running.job_id, pending)
                pending = []
                self.broker.notify(running.job_id)
            if raw == b"":
                return

    def _free(self, job_id: str) -> None:
        for slot, busy in self._slots.items():
            if busy == job_id:
                self._slots[slot] = None

    # -- state changes -------------------------------------------------------------------------
    def _set(self, job_id: str, **fields: Any) -> Job:
        job = self.store.update_job(job_id, **fields)
        if "state" in fields:
            self.store.append(job_id, [("state", job.model_dump(mode="json"))])
            self.broker.notify(job_id)
        self._publish(job)
        return job

    def _publish(self, job: Job) -> None:
        self.broker.job_changed(job)

    def progress_changed(self, job_id: str) -> None:
        """Called after a reporter's progress event: the job list shows progress live."""
        self._publish(self.store.get_job(job_id))


def _gpu_utilization(index: int) -> float | None:
    try:
        import torch

        return float(torch.cuda.utilization(index))
    except (ImportError, RuntimeError, ModuleNotFoundError):
        return None  # needs pynvml; absent is fine

