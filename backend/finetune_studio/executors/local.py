"""Run a worker as a process of its own session, which outlives the server that started it.

One GPU (or the CPU): `python -m finetune_studio.worker JOB_DIR`. Several GPUs, or several CPU processes:
the same module under `torch.distributed.run` (torchrun), one DDP rank per device (nccl on GPUs, gloo on
the CPU). torchrun copies rank 0's stdout and every rank's stderr into its own output, each line prefixed
`[rankN]:` (`--role rank --tee`; the ranks' own files are under `JOB_DIR/ranks/`). The worker's stdout and
stderr are appended to `JOB_DIR/stdout.log` and `JOB_DIR/stderr.log` (the server tails them:
`logtail.py`), never piped to the server, so a server crash does not take the worker with it.

torchrun starts each rank in a session of its own, so signals to torchrun's process group do not reach
them: a graceful stop sends SIGTERM to the ranks themselves (they agree on the stop at the end of a step,
save a checkpoint and exit; torchrun then exits 0), and a kill goes to every rank and to torchrun. When a
rank dies, torchrun stops the others and names the first failure ("Root Cause") in its stderr:
`rank_failure` turns that into the job's error, with that rank's last stderr lines.

`JOB_DIR/worker.json` names the worker: its pid, its number of processes, and a secret that is also in its
environment. A restarted server `adopt`s the process of that pid only when it carries that secret, so a
recycled pid is never taken for the worker (nor signalled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..logtail import log_path

WORKER_FILE = "worker.json"
WORKER_MODULE = "finetune_studio.worker"
RAY_DRIVER = "finetune_studio.executors.ray"
SECRET_VARIABLE = "FINETUNE_STUDIO_WORKER_SECRET"
POLL_SECONDS = 0.5  # how often an adopted worker (not this server's child) is checked for life


class Worker:
    """A running worker's process group (and, under torchrun, its ranks): signals, and waiting for its end."""

    def __init__(self, pid: int, stderr_from: int, world: int = 1, module: str = WORKER_MODULE) -> None:
        self.pid = pid
        self.stderr_from = stderr_from  # where this attempt's lines start in stderr.log
        self.world = world  # processes: more than 1 under torchrun
        self.module = module  # the worker, or the Ray driver (`executors/ray.py`)
        self.exited = False

    def ranks(self) -> list[psutil.Process]:
        """torchrun's rank processes (its direct children); none for a single process."""
        if self.world == 1 or self.exited:
            return []
        try:
            return list(psutil.Process(self.pid).children())
        except psutil.NoSuchProcess:
            return []

    def signal(self, signum: int) -> None:
        """Signal the whole process group; never after it was seen to end, when the pid may belong to
        another process."""
        if self.exited:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        """A graceful stop: a checkpoint, then the end. Under torchrun, the ranks are asked directly: a
        SIGTERM to torchrun would have it kill them 30 s later, whether their checkpoint is done or not."""
        ranks = self.ranks()
        if self.module == RAY_DRIVER:
            # A local Ray started by the driver is in its process group and would die at once: the driver
            # alone is asked, and stops the Ray run gracefully.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        elif not ranks:
            self.signal(signal.SIGTERM)
        for rank in ranks:
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                rank.terminate()

    def kill(self) -> None:
        for rank in self.ranks():  # each rank leads a session of its own (torchrun starts them so)
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                os.killpg(rank.pid, signal.SIGKILL)
        self.signal(signal.SIGKILL)

    async def wait(self) -> int | None:
        """The exit code (negative: the signal), or None when it is unknown (an adopted worker)."""
        raise NotImplementedError


class LocalProcess(Worker):
    """A worker this server started (its child: the exit code is known)."""

    def __init__(self, process: asyncio.subprocess.Process, stderr_from: int, world: int, module: str) -> None:
        super().__init__(process.pid, stderr_from, world, module)
        self._process = process

    async def wait(self) -> int:
        code = await self._process.wait()
        self.exited = True
        return code


class AdoptedProcess(Worker):
    """A worker started by an earlier server: not this server's child, so it is watched by polling."""

    def __init__(self, process: psutil.Process, stderr_from: int, world: int, module: str) -> None:
        super().__init__(process.pid, stderr_from, world, module)
        self._process = process

    def alive(self) -> bool:
        # is_running() also compares the creation time: a recycled pid is not this worker.
        try:
            return bool(self._process.is_running() and self._process.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    async def wait(self) -> None:
        while self.alive():
            await asyncio.sleep(POLL_SECONDS)
        self.exited = True
        return None


async def start(job_dir: Path, env: Mapping[str, str], gpus: list[int], processes: int = 1,
                preamble: str = "", module: str = WORKER_MODULE) -> LocalProcess:
    """Start the job's worker: one process, or `len(gpus)` (several GPUs) or `processes` (the CPU) DDP
    ranks under torchrun; or (`module` = RAY_DRIVER) the driver of its Ray Train workers. `preamble` goes
    first into stdout.log (what the job runs on)."""
    secret = secrets.token_urlsafe(24)
    child_env = dict(env)
    child_env[SECRET_VARIABLE] = secret
    child_env["PYTHONUNBUFFERED"] = "1"
    # Progress bars would flood the job's log: the dashboard and `run` show progress themselves.
    child_env["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    child_env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    child_env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    if module == RAY_DRIVER and "RAY_AUTH_MODE" not in child_env and (Path.home() / ".ray" / "auth_token").is_file():
        # `ray start` turns token authentication on when this token exists, but a driver connecting to an
        # address does not (and reads the mode once, at `import ray`): it would be refused by the cluster.
        child_env["RAY_AUTH_MODE"] = "token"
    world = 1 if module == RAY_DRIVER else len(gpus) if len(gpus) > 1 else processes
    command = [sys.executable, "-m", module, str(job_dir)]
    if world > 1:
        command[1:2] = ["-m", "torch.distributed.run", *torchrun_options(job_dir, world), "-m"]
    with log_path(job_dir, "stdout").open("ab") as stdout, log_path(job_dir, "stderr").open("ab") as stderr:
        if preamble:
            stdout.write(preamble.encode() + b"\n")
            stdout.flush()
        stderr_from = os.fstat(stderr.fileno()).st_size
        process = await asyncio.create_subprocess_exec(
            *command, cwd=job_dir, env=child_env, stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            start_new_session=True)
    _write_private(job_dir / WORKER_FILE, {"pid": process.pid, "secret": secret, "stderr_from": stderr_from,
                                           "world": world, "module": module})
    return LocalProcess(process, stderr_from, world, module)


def torchrun_options(job_dir: Path, world: int) -> list[str]:
    # Every rank's output goes to its file under ranks/; rank 0's stdout and every rank's stderr are also
    # copied into torchrun's, prefixed "[rankN]:" (the role's name and the rank).
    tee = ",".join(f"{rank}:{3 if rank == 0 else 2}" for rank in range(world))
    return ["--standalone", f"--nproc-per-node={world}", "--role=rank", f"--log-dir={job_dir / 'ranks'}",
            "--redirects=3", f"--tee={tee}"]


@dataclass
class RankFailure:
    rank: int
    exit: str  # "exit code 1", "signal 9 (SIGKILL)"
    lines: list[str]


_ROOT_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)")
_ROOT_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)(?:.*\((SIG\w+)\))?")


def rank_failure(stderr: Path, start: int, count: int) -> RankFailure | None:
    """The rank torchrun names as the first failure (its "Root Cause"), and that rank's last `count`
    stderr lines; None when torchrun reported none (a single process, or every rank ended well)."""
    try:
        with stderr.open("rb") as handle:
            handle.seek(start)
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    lines = text.splitlines()
    try:
        root = max(i for i, line in enumerate(lines) if line.startswith("Root Cause"))
    except ValueError:
        return None
    rank, exit_ = None, "an unknown exit"
    for line in lines[root:root + 12]:
        if rank is None and (found := _ROOT_RANK.match(line)):
            rank = int(found.group(1))
        elif found := _ROOT_EXIT.match(line):
            code = int(found.group(1))
            exit_ = f"signal {-code} ({found.group(2)})" if code < 0 else f"exit code {code}"
            break
    if rank is None:
        return None
    prefix = f"[rank{rank}]:"
    own = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
    return RankFailure(rank, exit_, own[-count:])


def adopt(job_dir: Path) -> AdoptedProcess | None:
    """The job's worker if it still runs (the process named in worker.json carries its secret), else None."""
    try:
        info = json.loads((job_dir / WORKER_FILE).read_text(encoding="utf-8"))
        pid, secret, stderr_from = int(info["pid"]), str(info["secret"]), int(info["stderr_from"])
        world, module = int(info.get("world", 1)), str(info.get("module", WORKER_MODULE))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no worker was started here (or by a version that did not name it)
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or process.environ().get(SECRET_VARIABLE) != secret:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None  # gone, or another user's process under a recycled pid
    return AdoptedProcess(process, stderr_from, world, module)


def _write_private(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    os.replace(partial, path)

