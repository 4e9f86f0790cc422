"""Device slots -> worker processes: launch, supervision, cancellation, reconciliation at start.

One job per GPU; with no GPU, one job at a time on the CPU. The worker writes `result.json` into its
job folder before it exits; a worker that dies without one failed, and its last stderr lines become the
job's error. At start, jobs left running by a dead server become `interrupted` (resumable from their
last checkpoint); at shutdown, running workers get SIGTERM (they save a checkpoint) and are marked
`interrupted` too. Every state change goes through `Jobs.change`, called through the thread pool so
that store writes never block the event loop. `wake` and `check_resources` are safe from any thread;
the rest runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from .devices import DeviceSlots, Slot, describe, gpu_count
from .errors import Conflict, FieldProblem, SpecError
from .executors import local
from .jobs import Jobs
from .spec import JobSpec
from .wire import Device, Job, JobError

log = logging.getLogger(__name__)

CANCEL_GRACE_SECONDS = 120.0
STDERR_TAIL_LINES = 25


@dataclass
class _Running:
    job_id: str
    slots: list[Slot]
    process: local.LocalProcess
    cancel_requested: bool = False
    stopping_server: bool = False
    supervisor: asyncio.Task[None] | None = None
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


class Scheduler:
    def __init__(self, jobs: Jobs, url: str, token: str) -> None:
        self.jobs = jobs
        self.url = url
        self.token = token
        self.slots = DeviceSlots(list(range(gpu_count())))
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatcher: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await run_in_threadpool(self._reconcile)
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="studio-scheduler")
        self._wake.set()

    async def stop(self) -> None:
        if self._dispatcher:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        for running in list(self._running.values()):
            running.stopping_server = True
            running.process.terminate()
        waits = [asyncio.wait_for(r.process.wait(), CANCEL_GRACE_SECONDS) for r in self._running.values()]
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, TimeoutError):
                log.warning("a worker did not stop within %ss; killing it", CANCEL_GRACE_SECONDS)
        supervisors = [r.supervisor for r in self._running.values() if r.supervisor]
        for running in list(self._running.values()):
            running.process.kill()
        await asyncio.gather(*supervisors, return_exceptions=True)  # their jobs' last state is recorded

    def _reconcile(self) -> None:
        for job in self.jobs.store.list_jobs(states=("running", "cancelling")):
            pid = self.jobs.store.job_pid(job.id)
            if pid_alive(pid) and job.kind == "managed":
                # Its pipes went with the old server: stop it so it saves a checkpoint, then resume.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)  # type: ignore[arg-type]
            elif pid_alive(pid):
                continue  # an attached script is still running and reporting
            self.jobs.change(job.id, state="interrupted", finished_at=time.time(), pid=None,
                             error=JobError(type="interrupted", message="the server stopped while this job ran",
                                            hint="Resume continues from the last checkpoint").model_dump())

    # -- requests ------------------------------------------------------------------------------
    def wake(self) -> None:
        """Look at the queue again (after a submit or a resume); safe from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def check_resources(self, spec: JobSpec) -> None:
        wanted = spec.resources.gpus
        if spec.resources.executor == "ray":
            raise SpecError([FieldProblem(
                "resources.executor", "the Ray executor is not available in this version: use \"local\" "
                "(one machine, one job per GPU)")])
        found = len(self.slots.gpus)
        if isinstance(wanted, int) and wanted > max(1, found):
            raise SpecError([FieldProblem(
                "resources.gpus", f"asks for {wanted} GPUs but this machine has {found}: use at most {max(1, found)}")])

    async def cancel(self, job_id: str) -> Job:
        job = await run_in_threadpool(self.jobs.get, job_id)
        if job.state == "queued":
            return await run_in_threadpool(self.jobs.change, job_id, state="cancelled", finished_at=time.time())
        running = self._running.get(job_id)
        if running is None or job.state not in ("running", "cancelling"):
            raise Conflict(f"job {job_id} is {job.state}; only queued or running jobs can be cancelled")
        running.cancel_requested = True
        running.process.terminate()
        asyncio.get_running_loop().call_later(CANCEL_GRACE_SECONDS, running.process.kill)
        return await run_in_threadpool(self.jobs.change, job_id, state="cancelling")

    def devices(self) -> list[Device]:
        return describe(self.slots.gpus, self.slots.holders())

    # -- dispatch ------------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            queued = await run_in_threadpool(self.jobs.store.list_jobs, ("queued",))
            for job in sorted(queued, key=lambda j: j.created_at):
                slots = self.slots.free_for(job.spec.resources.gpus if job.spec else 1)
                if slots is None:
                    break  # first come, first served: later jobs wait behind this one
                await self._launch(job, slots)

    async def _launch(self, job: Job, slots: list[Slot]) -> None:
        self.slots.take(slots, job.id)
        gpus = [s for s in slots if isinstance(s, int)]
        env = dict(os.environ, FINETUNE_STUDIO_URL=self.url, FINETUNE_STUDIO_TOKEN=self.token,
                   FINETUNE_STUDIO_JOB=job.id, FINETUNE_STUDIO_ATTEMPT=str(job.attempt),
                   FINETUNE_STUDIO_HOME=str(self.jobs.data_dir))
        job_dir = self.jobs.folder(job.id)
        (job_dir / "result.json").unlink(missing_ok=True)
        try:
            process = await local.start(job_dir, env, gpus)
        except OSError as error:
            self.slots.release(job.id)
            await run_in_threadpool(self.jobs.change, job.id, state="failed", finished_at=time.time(),
                                    error=JobError(type="start_failed", message=f"could not start the worker: {error}",
                                                   hint="check that this Python environment has finetune-studio "
                                                        "installed").model_dump())
            return
        running = _Running(job.id, slots, process)
        self._running[job.id] = running
        device = ",".join(f"cuda:{g}" for g in gpus) or "cpu"
        await run_in_threadpool(self.jobs.change, job.id, state="running", started_at=job.started_at or time.time(),
                                device=device, pid=process.pid)
        running.supervisor = asyncio.create_task(self._supervise(running), name=f"studio-worker-{job.id}")

    async def _supervise(self, running: _Running) -> None:
        pumps = [asyncio.create_task(self._pump(running, running.process.stdout, "stdout")),
                 asyncio.create_task(self._pump(running, running.process.stderr, "stderr"))]
        code = await running.process.wait()
        await asyncio.gather(*pumps)
        self._running.pop(running.job_id, None)
        self.slots.release(running.job_id)
        state, error = self._outcome(running, code)
        await run_in_threadpool(self.jobs.change, running.job_id, state=state, finished_at=time.time(), pid=None,
                                error=error.model_dump() if error else None)
        self._wake.set()

    def _outcome(self, running: _Running, code: int) -> tuple[str, JobError | None]:
        result_file = self.jobs.folder(running.job_id) / "result.json"
        result: dict[str, Any] = {}
        if result_file.is_file():
            result = json.loads(result_file.read_text(encoding="utf-8"))
        if result.get("state") == "completed" and code == 0:
            return "completed", None
        if running.cancel_requested:
            return "cancelled", None
        if running.stopping_server:
            return "interrupted", JobError(type="interrupted", message="the server stopped while this job ran",
                                           hint="Resume continues from the last checkpoint")
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
                await run_in_threadpool(self.jobs.store.append, running.job_id, pending)
                pending = []
                self.jobs.broker.notify(running.job_id)
            if raw == b"":
                return
