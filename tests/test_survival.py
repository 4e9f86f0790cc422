"""Training outlives its front ends (issue 10), with real processes and signals: one server per state
folder, a server started by the CLI survives the CLI, and an idle server stops itself only when idle."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import tomli_w

from conftest import RunningServer
from finetune_studio.client import StudioClient
from finetune_studio.store import read_job


def serve(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "finetune_studio", "serve", "--data-dir", str(data_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def wait_until(condition: Any, timeout: float = 120, what: str = "") -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_second_server_on_a_live_state_folder_is_refused_and_the_first_jobs_run_on(
        server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    """A second server used to take over server.json, SIGTERM the first one's worker and run jobs beside it."""
    tiny_spec["training"]["epochs"] = 1
    job = server.client.submit(tiny_spec)
    server.wait_for(job.id, {"running"})
    server_json = (server.data_dir / "server.json").read_bytes()
    worker = json.loads((server.data_dir / "jobs" / job.id / "worker.json").read_text())["pid"]

    second = serve(server.data_dir)
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 1
    assert f"already served by process {server.process.pid} at {server.url}" in stderr, stderr
    assert (server.data_dir / "server.json").read_bytes() == server_json
    assert psutil.pid_exists(worker) and server.client.job(job.id).state == "running"
    assert server.wait_for(job.id).state == "completed"


def test_killing_the_cli_that_started_the_server_leaves_the_job_training(
        tmp_path: Path, tiny_spec: dict[str, Any]) -> None:
    """`run` starts the server detached: closing its terminal (SIGHUP to its process group) ends `run`,
    not the server or the job. The server's log is private and holds no token."""
    tiny_spec["training"]["epochs"] = 1
    config = tmp_path / "finetune.toml"
    config.write_text(tomli_w.dumps(tiny_spec), encoding="utf-8")
    data_dir = tmp_path / ".finetune-studio"
    run = subprocess.Popen([sys.executable, "-m", "finetune_studio", "run", str(config), "--data-dir", str(data_dir)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    wait_until(lambda: (data_dir / "server.json").is_file(), what="the server that run starts")
    info = json.loads((data_dir / "server.json").read_text())
    client = StudioClient(info["url"], info["token"])
    try:
        wait_until(lambda: any(j.state == "running" for j in client.jobs()), what="the job to run")
        os.killpg(run.pid, signal.SIGHUP)  # the terminal closes
        assert run.wait(timeout=30) != 0
        job = client.jobs()[0]
        assert job.state == "running" and psutil.pid_exists(info["pid"])
        wait_until(lambda: client.job(job.id).state not in ("running", "queued"), what="the job to end")
        assert client.job(job.id).state == "completed"
        log = data_dir / "server.log"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        assert info["token"] not in log.read_text()
    finally:
        client.close()
        os.kill(info["pid"], signal.SIGTERM)
        psutil.Process(info["pid"]).wait(timeout=60)


def test_an_idle_server_stops_itself_but_never_while_a_job_runs_or_a_client_listens(
        tmp_path: Path, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["training"]["epochs"] = 1
    data_dir = tmp_path / ".finetune-studio"
    process = serve(data_dir, "--idle-timeout", "2")
    try:
        wait_until(lambda: (data_dir / "server.json").is_file() or process.poll() is not None, what="server.json")
        info = json.loads((data_dir / "server.json").read_text())
        client = StudioClient(info["url"], info["token"])
        job = client.submit(tiny_spec)
        client.close()
        # No client from now on: the job (its worker starts in seconds, then trains) keeps the server up.
        wait_until(lambda: read_job(data_dir / "studio.db", job.id).state == "completed", what="the job")
        assert process.poll() is None
        with httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {info['token']}"},
                          trust_env=False, timeout=30) as http, http.stream("GET", "/api/stream"):
            time.sleep(4)  # a listening client keeps it up too
            assert process.poll() is None
        stdout, _ = process.communicate(timeout=30)  # then it stops by itself
        assert process.returncode == 0 and "no job ran and no client came for 2 s" in stdout
        assert not (data_dir / "server.json").exists()
        assert info["token"] not in stdout  # not a terminal: the URL only
    finally:
        if process.poll() is None:
            process.kill()
