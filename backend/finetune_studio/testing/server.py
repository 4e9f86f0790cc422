"""The real server (uvicorn) on a free port with its own state folder, started as users start it
(`python -m finetune_studio serve`), and a handle to wait for jobs and stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..client import StudioClient
from ..wire import FINISHED_STATES, Job


@dataclass
class RunningServer:
    data_dir: Path
    process: subprocess.Popen[bytes]
    url: str
    token: str
    client: StudioClient

    def wait_for(self, job_id: str, states: frozenset[str] | set[str] = FINISHED_STATES,
                 timeout: float = 180) -> Job:
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.client.job(job_id)
            if job.state in states:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not reach {sorted(states)} in {timeout}s: {job.state}; logs:\n"
                             + "\n".join(line["text"] for line in self.client.request(
                                 "GET", f"/api/jobs/{job_id}/logs")["lines"][-30:]))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None, threads: int | None = 1) -> RunningServer:
    """`threads` caps the workers' OpenMP threads; None keeps torch's default (benchmarks)."""
    server_json = data_dir / "server.json"
    server_json.unlink(missing_ok=True)
    # One thread per worker in tests: tiny models gain nothing from more, and on a busy machine more
    # threads contend (a 2-layer BERT step took 12x longer with 2 threads than with 1 under load).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {}),
           **(extra_env or {})}
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / f"{data_dir.name}-server.log", "ab")  # noqa: SIM115 - the child's output
    process = subprocess.Popen([sys.executable, "-m", "finetune_studio", "serve", "--data-dir", str(data_dir),
                                "--port", "0"], stdout=log, stderr=log, env=env)
    deadline = time.time() + 60
    while not server_json.is_file():
        if process.poll() is not None or time.time() > deadline:
            raise AssertionError("the server did not start:\n" + Path(log.name).read_text())
        time.sleep(0.05)
    info = json.loads(server_json.read_text())
    return RunningServer(data_dir, process, info["url"], info["token"], StudioClient(info["url"], info["token"]))


@contextmanager
def studio_server(data_dir: Path, threads: int | None = None) -> Iterator[StudioClient]:
    """A server for the length of a `with` block (benchmarks: torch's default threads)."""
    running = start_server(data_dir, threads=threads)
    try:
        yield running.client
    finally:
        running.stop()
