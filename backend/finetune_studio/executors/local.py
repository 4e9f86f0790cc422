"""Run a worker as a process of its own session, which outlives the server that started it.

One GPU (or the CPU): `python -m finetune_studio.worker JOB_DIR`. Several GPUs: the same module under
`torch.distributed.run` (torchrun). The worker's stdout and stderr are appended to `JOB_DIR/stdout.log`
and `JOB_DIR/stderr.log` (the server tails them: `logtail.py`), never piped to the server, so a server
crash does not take the worker with it. `JOB_DIR/worker.json` names the worker: its pid and a secret that
is also in its environment. A restarted server `adopt`s the process of that pid only when it carries that
secret, so a recycled pid is never taken for the worker (nor signalled).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from ..logtail import log_path

WORKER_FILE = "worker.json"
SECRET_VARIABLE = "FINETUNE_STUDIO_WORKER_SECRET"
POLL_SECONDS = 0.5  # how often an adopted worker (not this server's child) is checked for life


class Worker:
    """A running worker's process group: signals, and waiting for its end."""

    def __init__(self, pid: int, stderr_from: int) -> None:
        self.pid = pid
        self.stderr_from = stderr_from  # where this attempt's lines start in stderr.log
        self.exited = False

    def signal(self, signum: int) -> None:
        """Signal the whole process group (torchrun's children too); never after it was seen to end, when
        the pid may belong to another process."""
        if self.exited:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    async def wait(self) -> int | None:
        """The exit code (negative: the signal), or None when it is unknown (an adopted worker)."""
        raise NotImplementedError


class LocalProcess(Worker):
    """A worker this server started (its child: the exit code is known)."""

    def __init__(self, process: asyncio.subprocess.Process, stderr_from: int) -> None:
        super().__init__(process.pid, stderr_from)
        self._process = process

    async def wait(self) -> int:
        code = await self._process.wait()
        self.exited = True
        return code


class AdoptedProcess(Worker):
    """A worker started by an earlier server: not this server's child, so it is watched by polling."""

    def __init__(self, process: psutil.Process, stderr_from: int) -> None:
        super().__init__(process.pid, stderr_from)
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


async def start(job_dir: Path, env: Mapping[str, str], gpus: list[int]) -> LocalProcess:
    secret = secrets.token_urlsafe(24)
    child_env = dict(env)
    child_env[SECRET_VARIABLE] = secret
    child_env["PYTHONUNBUFFERED"] = "1"
    # Progress bars would flood the job's log: the dashboard and `run` show progress themselves.
    child_env["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    child_env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if gpus:
        child_env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    else:
        child_env["CUDA_VISIBLE_DEVICES"] = ""
    if len(gpus) > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={len(gpus)}", "-m", "finetune_studio.worker", str(job_dir)]
    else:
        command = [sys.executable, "-m", "finetune_studio.worker", str(job_dir)]
    with log_path(job_dir, "stdout").open("ab") as stdout, log_path(job_dir, "stderr").open("ab") as stderr:
        stderr_from = os.fstat(stderr.fileno()).st_size
        process = await asyncio.create_subprocess_exec(
            *command, cwd=job_dir, env=child_env, stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            start_new_session=True)
    _write_private(job_dir / WORKER_FILE, {"pid": process.pid, "secret": secret, "stderr_from": stderr_from})
    return LocalProcess(process, stderr_from)


def adopt(job_dir: Path) -> AdoptedProcess | None:
    """The job's worker if it still runs (the process named in worker.json carries its secret), else None."""
    try:
        info = json.loads((job_dir / WORKER_FILE).read_text(encoding="utf-8"))
        pid, secret, stderr_from = int(info["pid"]), str(info["secret"]), int(info["stderr_from"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no worker was started here (or by a version that did not name it)
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or process.environ().get(SECRET_VARIABLE) != secret:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None  # gone, or another user's process under a recycled pid
    return AdoptedProcess(process, stderr_from)


def _write_private(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    os.replace(partial, path)
