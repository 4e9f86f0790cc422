"""Device slots -> worker processes: launch, supervision, cancellation, re-adoption at start.

One job per GPU; with no GPU, one job at a time on the CPU. A worker runs in its own session and writes
its output to files in its job folder, which its supervisor here tails into `log` events
(`logtail.py`), so it outlives a server crash. It writes `result.json` before it exits; a worker that
dies without one failed, and the last lines of its stderr become the job's error. Whatever it spooled
while no server listened (`spool.jsonl`) is stored when it ends.

At start, each job left `running` or `cancelling` gets its worker back when that worker still runs (pid
plus its secret: `executors/local.py`) and is supervised again; a job whose worker is gone ends as its
`result.json` says, else `interrupted` (resumable from its last checkpoint). At shutdown, running workers
get SIGTERM (they save a checkpoint) and are marked `interrupted`. Every state change goes through
`Jobs.change`, called through the thread pool so that store writes never block the event loop. `wake`
and `check_resources` are safe from any thread; the rest runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from .devices import DeviceSlots, Slot, describe, gpu_count
from .errors import Conflict, FieldProblem, SpecError
from .executors import local
from .jobs import Jobs
from .logtail import SOURCE, LogTail, last_lines, log_path
from .spec import JobSpec
from .wire import Device, IngestBatch, Job, JobError

log = logging.getLogger(__name__)

CANCEL_GRACE_SECONDS = 120.0
STDERR_TAIL_LINES = 25
LOG_POLL_SECONDS = 0.1  # how soon a worker's printed line shows in the job's log
ACTIVE_STATES = ("queued", "running", "cancelling")
INTERRUPTED = JobError(type="interrupted", message="the server stopped while this job ran",
                       hint="Resume continues from the last checkpoint")


@dataclass
class _Running:
    job_id: str
    slots: list[Slot]
    process: local.Worker | None  # None: found dead at start
    tail: LogTail
    cancel_requested: bool = False
    stopping_server: bool = False
    supervisor: asyncio.Task[None] | None = None


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
        for job, process in await run_in_threadpool(self._reconcile):
            slots = self._slots_of(job)
            self.slots.take(slots, job.id)
            running = _Running(job.id, slots, process, LogTail(self.jobs.folder(job.id)),
                               cancel_requested=job.state == "cancelling")
            self._running[job.id] = running
            running.supervisor = asyncio.create_task(self._supervise(running), name=f"studio-worker-{job.id}")
            if running.cancel_requested:  # the earlier server asked it to stop: the same grace, then SIGKILL
                self._loop.call_later(CANCEL_GRACE_SECONDS, process.kill)
            log.info("job %s: re-adopted its worker (process %d)", job.id, process.pid)
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="studio-scheduler")
        self._wake.set()

    async def stop(self) -> None:
        if self._dispatcher:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        workers = [(r, r.process) for r in self._running.values() if r.process is not None]
        for running, process in workers:
            running.stopping_server = True
            process.terminate()
        waits = [asyncio.wait_for(process.wait(), CANCEL_GRACE_SECONDS) for _, process in workers]
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, TimeoutError):
                log.warning("a worker did not stop within %ss; killing it", CANCEL_GRACE_SECONDS)
        supervisors = [r.supervisor for r in self._running.values() if r.supervisor]
        for _, process in workers:
            process.kill()
        await asyncio.gather(*supervisors, return_exceptions=True)  # their jobs' last state is recorded

    async def busy(self) -> bool:
        """Whether a job is queued or runs (a worker here, or an attached run): the server is not idle."""
        return bool(self._running) or bool(await run_in_threadpool(self.jobs.store.list_jobs, ACTIVE_STATES))

    def _reconcile(self) -> list[tuple[Job, local.AdoptedProcess]]:
        """The jobs left running by an earlier server: their live workers (to supervise again); the others
        end now, as their worker's result says."""
        adopted = []
        for job in self.jobs.store.list_jobs(states=("running", "cancelling")):
            if job.kind == "attached":
                if not pid_alive(self.jobs.store.job_pid(job.id)):
                    self.jobs.change(job.id, state="interrupted", finished_at=time.time(), pid=None,
                                     error=INTERRUPTED.model_dump())
                continue  # an attached script that is still running keeps reporting
            process = local.adopt(self.jobs.folder(job.id))
            if process is not None:
                adopted.append((job, process))
                continue
            gone = _Running(job.id, [], None, LogTail(self.jobs.folder(job.id)),
                            cancel_requested=job.state == "cancelling")
            self._settle(gone, None)
        return adopted

    def _slots_of(self, job: Job) -> list[Slot]:
        """The slots an adopted worker holds, from the device it was started on ("cpu", "cpu ×2 (gloo)",
        "cuda:0", "cuda:0,cuda:1 (nccl)")."""
        held: list[Slot] = ([int(d.removeprefix("cuda:")) for d in job.device.split(" ")[0].split(",")]
                            if job.device and job.device.startswith("cuda:") else ["cpu"])
        return [s for s in held if s in self.slots.holders()]

    # -- requests ------------------------------------------------------------------------------
    def wake(self) -> None:
        """Look at the queue again (after a submit or a resume); safe from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def check_resources(self, spec: JobSpec) -> None:
        problems = resource_problems(spec, len(self.slots.gpus), importlib.util.find_spec("ray") is not None)
        if problems:
            raise SpecError(problems)

    async def cancel(self, job_id: str) -> Job:
        job = await run_in_threadpool(self.jobs.get, job_id)
        if job.state == "queued":
            return await run_in_threadpool(self.jobs.change, job_id, state="cancelled", finished_at=time.time())
        running = self._running.get(job_id)
        if running is None or job.state not in ("running", "cancelling"):
            raise Conflict(f"job {job_id} is {job.state}; only queued or running jobs can be cancelled")
        assert running.process is not None  # only supervised jobs are in _running
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
        # The URL and token of this server; when it restarts, the reporter finds the next one through
        # FINETUNE_STUDIO_HOME/server.json (docs/discovery.md).
        env = dict(os.environ, FINETUNE_STUDIO_URL=self.url, FINETUNE_STUDIO_TOKEN=self.token,
                   FINETUNE_STUDIO_JOB=job.id, FINETUNE_STUDIO_ATTEMPT=str(job.attempt),
                   FINETUNE_STUDIO_HOME=str(self.jobs.data_dir))
        job_dir = self.jobs.folder(job.id)
        (job_dir / "result.json").unlink(missing_ok=True)
        assert job.spec is not None  # only managed jobs are queued
        device, preamble = layout(job.spec, gpus)
        ray = job.spec.resources.executor == "ray"
        try:
            process = await local.start(job_dir, env, gpus, job.spec.resources.processes if not gpus else 1,
                                        preamble, local.RAY_DRIVER if ray else local.WORKER_MODULE)
        except OSError as error:
            self.slots.release(job.id)
            await run_in_threadpool(self.jobs.change, job.id, state="failed", finished_at=time.time(),
                                    error=JobError(type="start_failed", message=f"could not start the worker: {error}",
                                                   hint="check that this Python environment has finetune-studio "
                                                        "installed").model_dump())
            return
        running = _Running(job.id, slots, process, LogTail(job_dir))
        self._running[job.id] = running
        await run_in_threadpool(self.jobs.change, job.id, state="running", started_at=job.started_at or time.time(),
                                device=device, pid=process.pid)
        running.supervisor = asyncio.create_task(self._supervise(running), name=f"studio-worker-{job.id}")

    async def _supervise(self, running: _Running) -> None:
        """Tail the worker's output into the job's log until it ends; then record how it ended."""
        assert running.process is not None
        ended = asyncio.ensure_future(running.process.wait())
        while not ended.done():
            try:
                await run_in_threadpool(self._store_lines, running, False)
            except Exception:  # the supervisor must outlive a bad batch: the lines are read again
                log.exception("job %s: storing its worker's output failed; trying again", running.job_id)
                await asyncio.sleep(1)
            await asyncio.wait({ended}, timeout=LOG_POLL_SECONDS)
        self._running.pop(running.job_id, None)
        self.slots.release(running.job_id)
        await run_in_threadpool(self._settle, running, ended.result())
        self._wake.set()

    def _settle(self, running: _Running, code: int | None) -> None:
        """After the worker's end: the rest of its output and its spool are stored, then its job's end."""
        try:
            while self._store_lines(running, True):
                pass
            self._store_spool(running.job_id)
        except Exception:  # a job must end even when its last output cannot be stored
            log.exception("job %s: storing its worker's last output failed", running.job_id)
        state, error = self._outcome(running, code)
        self.jobs.change(running.job_id, state=state, finished_at=time.time(), pid=None,
                         error=error.model_dump() if error else None)

    def _store_lines(self, running: _Running, final: bool) -> int:
        """Store the lines the worker wrote since the last call, as one batch per file; how many."""
        read = running.tail.read(final)
        for stream, events in read.items():
            self.jobs.store.ingest(running.job_id, SOURCE[stream], events)
        running.tail.commit(read)
        if read:
            self.jobs.broker.notify(running.job_id)
        return sum(len(events) for events in read.values())

    def _store_spool(self, job_id: str) -> None:
        """What the worker's reporter could not send (no server listened): stored once, like a replay."""
        spool = self.jobs.folder(job_id) / "spool.jsonl"
        if not spool.is_file():
            return
        job = self.jobs.get(job_id)
        for number, line in enumerate(spool.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                batch = IngestBatch.model_validate_json(line)
            except ValueError as error:  # a line cut short when the worker was killed mid-write
                log.warning("job %s: line %d of %s is unreadable and skipped: %s", job_id, number, spool, error)
                continue
            self.jobs.events_stored(job, self.jobs.store.ingest(job_id, batch.attempt, batch.events))
        spool.unlink()

    def _outcome(self, running: _Running, code: int | None) -> tuple[str, JobError | None]:
        """`code` is None when the exit code is unknown: a re-adopted worker, or one found dead at start."""
        result_file = self.jobs.folder(running.job_id) / "result.json"
        result: dict[str, Any] = {}
        if result_file.is_file():
            result = json.loads(result_file.read_text(encoding="utf-8"))
        if result.get("state") == "completed" and code in (0, None):
            return "completed", None
        if running.cancel_requested:
            return "cancelled", None
        if running.stopping_server:
            return "interrupted", INTERRUPTED
        stderr = log_path(self.jobs.folder(running.job_id), "stderr")
        world = running.process.world if running.process is not None else 1
        failure = (local.rank_failure(stderr, running.process.stderr_from, STDERR_TAIL_LINES)
                   if running.process is not None and world > 1 and code != 0 else None)
        # Rank 0's own error is the better one when rank 0 failed first: the others only lost their peer.
        if failure is not None and (failure.rank != 0 or not result.get("error")):
            tail = "\n".join(failure.lines) or "(no output on stderr)"
            return "failed", JobError(type="rank_failed", message=f"rank {failure.rank} of "
                                      f"{world} died ({failure.exit}). Its last stderr lines:\n{tail}",
                                      hint="the job's log holds every rank's output, each line prefixed by its rank; "
                                           "Resume continues from the last checkpoint")
        if result.get("error"):
            return "failed", JobError.model_validate(result["error"])
        if running.process is None:
            return "interrupted", JobError(
                type="interrupted", message="the worker stopped while no server was running",
                hint="Resume continues from the last checkpoint")
        lines = last_lines(stderr, running.process.stderr_from, STDERR_TAIL_LINES)
        tail = "\n".join(lines) or "(no output on stderr)"
        reason = ("exit status unknown: another server started it" if code is None
                  else f"signal {-code}" if code < 0 else f"exit code {code}")
        return "failed", JobError(type="worker_crashed", message=f"the worker died ({reason}). Last stderr "
                                  f"lines:\n{tail}", hint="Resume continues from the last checkpoint")


def resource_problems(spec: JobSpec, found: int, ray_installed: bool) -> list[FieldProblem]:
    """What this machine (`found` GPUs, Ray or not) cannot run of `spec.resources`: a 422 at submit."""
    resources, problems = spec.resources, []
    if resources.executor == "ray" and not ray_installed:
        problems.append(FieldProblem(
            "resources.executor", "the Ray executor needs Ray, which this Python lacks: pip install "
            "\"finetune-studio[ray]\" (or \"ray[train]\"), or use executor = \"local\""))
    if isinstance(resources.gpus, int) and resources.gpus > max(1, found):
        problems.append(FieldProblem(
            "resources.gpus", f"asks for {resources.gpus} GPUs but this machine has {found}: use at most "
            f"{max(1, found)}" + ("" if found else ", or resources.processes for CPU processes")))
    if resources.processes > 1 and found:
        problems.append(FieldProblem(
            "resources.processes", f"CPU processes are for machines without a GPU; this one has {found}: "
            f"use resources.gpus = {min(found, resources.processes)} (one process per GPU)"))
    return problems


def layout(spec: JobSpec, gpus: list[int]) -> tuple[str, str]:
    """The job's device as shown ("cpu", "cuda:0", "cpu ×2 (gloo)", "cuda:0,cuda:1 (nccl)", "ray ×2 (CPU,
    a local Ray)"), and for several processes a first log line with the per-device and the global batch."""
    resources, t = spec.resources, spec.training
    world = len(gpus) if gpus else resources.processes
    device = ",".join(f"cuda:{g}" for g in gpus) or "cpu"
    backend = "nccl" if gpus else "gloo"
    if resources.executor == "ray":
        world = resources.processes if resources.processes > 1 else len(gpus) or 1
        where = resources.ray_address or os.environ.get("RAY_ADDRESS") or "a local Ray"
        device = f"ray ×{world} ({'GPU' if gpus else 'CPU'}, {where})"
    elif world == 1:
        return device, ""
    else:
        device = f"{device} ({backend})" if gpus else f"cpu ×{world} ({backend})"
    return device, (f"studio: {world} DDP processes ({backend}): batch {t.batch_size} per process × {world} "
                    f"processes × {t.gradient_accumulation_steps} accumulation = global batch "
                    f"{t.batch_size * world * t.gradient_accumulation_steps}")
