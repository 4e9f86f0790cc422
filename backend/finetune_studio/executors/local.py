"""Run a worker as a child process of the server, in its own process group.

One GPU (or the CPU): `python -m finetune_studio.worker JOB_DIR`. Several GPUs: the same module under
`torch.distributed.run` (torchrun). The server reads the child's stdout and stderr line by line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path


class LocalProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self._process.stdout is not None
        return self._process.stdout

    @property
    def stderr(self) -> asyncio.StreamReader:
        assert self._process.stderr is not None
        return self._process.stderr

    def signal(self, signum: int) -> None:
        """Signal the whole process group (torchrun's children too)."""
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    async def wait(self) -> int:
        return await self._process.wait()


async def start(job_dir: Path, env: Mapping[str, str], gpus: list[int]) -> LocalProcess:
    child_env = dict(env)
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
    process = await asyncio.create_subprocess_exec(
        *command, cwd=job_dir, env=child_env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True, limit=1 << 20)
    return LocalProcess(process)
