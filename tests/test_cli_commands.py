"""The commands that manage a server and its jobs from the terminal (`status`, `stop`, `open`, `logs`,
`cancel`, `resume`), and the CLI's one-line errors; against a real server, as users type them."""

from __future__ import annotations

import os
import select
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import RunningServer
from finetune_studio.follow import follow


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finetune_studio", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def attached_run(server: RunningServer, name: str = "script") -> str:
    job: dict[str, Any] = server.client.request("POST", "/api/runs", json={"name": name})
    return str(job["id"])


def report(server: RunningServer, job_id: str, first_seq: int, events: list[tuple[str, dict[str, Any]]]) -> None:
    """What StudioCallback sends for an attached run: numbered events of attempt 1."""
    server.client.request("POST", f"/api/jobs/{job_id}/events", json={"attempt": 1, "events": [
        {"seq": first_seq + i, "type": kind, "time": time.time(), "data": data}
        for i, (kind, data) in enumerate(events)]})


def log(text: str, stream: str = "stderr") -> tuple[str, dict[str, Any]]:
    return "log", {"stream": stream, "text": text}


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "; hint: " in lines[0], result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_status_stop_logs_cancel_and_resume_a_running_job(server: RunningServer, tiny_spec: dict[str, Any],
                                                         tmp_path: Path) -> None:
    state = ("--data-dir", str(server.data_dir))
    tiny_spec["training"]["epochs"] = 20  # 400 steps: still running after three CLI commands on a busy machine
    job = server.client.submit(tiny_spec)
    server.wait_for(job.id, {"running"})
    deadline = time.time() + 180
    while server.client.job(job.id).progress.step < 1:  # training, not still loading the model
        assert time.time() < deadline, "the job never reached step 1"
        time.sleep(0.2)

    status = cli("status", *state, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert server.url in status.stdout and f"pid {server.process.pid}" in status.stdout
    assert job.id in status.stdout and "running" in status.stdout

    refused = cli("stop", *state, cwd=tmp_path)
    assert_one_error_line(refused, job.id, "interrupts", "resumed", "stop --force")
    assert server.process.poll() is None

    logs = cli("logs", job.id, *state, cwd=tmp_path)
    assert logs.returncode == 0 and "attempt 1: preparing text-classification" in logs.stdout

    cancelled = cli("cancel", job.id, *state, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"resume {job.id}" in cancelled.stdout
    assert server.wait_for(job.id).state == "cancelled"

    resumed = cli("resume", job.id, *state, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "attempt 2" in resumed.stdout and f"logs {job.id} -f" in resumed.stdout
    followed = cli("logs", job.id, "-f", *state, cwd=tmp_path)  # returns when the job ends
    assert followed.returncode == 0, followed.stderr
    assert server.client.job(job.id).state == "completed"
    assert "attempt 1: preparing" in followed.stdout and "resuming from" in followed.stdout
    assert f"saved the model to {server.data_dir / 'jobs' / job.id / 'model'}" in followed.stdout

    assert "no job is running" in cli("status", *state, cwd=tmp_path).stdout
    stopped = cli("stop", *state, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped the server of {server.data_dir} (pid {server.process.pid})" in stopped.stdout
    server.process.wait(timeout=5)  # gone (uvicorn ends a graceful SIGTERM stop by re-raising it: -15)
    assert not (server.data_dir / "server.json").exists()
    after = cli("status", *state, cwd=tmp_path)
    assert after.returncode == 1 and "no server is running" in after.stdout
    assert cli("stop", *state, cwd=tmp_path).returncode == 0  # nothing to stop is not an error


def test_stop_force_interrupts_running_jobs(server: RunningServer, tiny_spec: dict[str, Any],
                                            tmp_path: Path) -> None:
    tiny_spec["training"]["epochs"] = 50
    job = server.client.submit(tiny_spec)
    server.wait_for(job.id, {"running"})
    stopped = cli("stop", "--force", "--data-dir", str(server.data_dir), cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert f"job {job.id} is interrupted" in stopped.stdout and f"resume {job.id}" in stopped.stdout
    server.process.wait(timeout=5)  # gone (uvicorn ends a graceful SIGTERM stop by re-raising it: -15)


def test_open_shows_the_dashboard_in_the_browser(server: RunningServer, tmp_path: Path) -> None:
    """The browser is replaced through $BROWSER, which Python's webbrowser honours."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n', encoding="utf-8")
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    state = ("--data-dir", str(server.data_dir))
    job_id = attached_run(server)

    assert cli("open", *state, cwd=tmp_path, env={"BROWSER": str(browser)}).returncode == 0
    assert cli("open", job_id, *state, cwd=tmp_path, env={"BROWSER": str(browser)}).returncode == 0
    assert opened.read_text().splitlines() == [f"{server.url}/?token={server.token}",
                                               f"{server.url}/?token={server.token}#job={job_id}"]

    unknown = cli("open", "no-such-job", *state, cwd=tmp_path, env={"BROWSER": str(browser)})
    assert_one_error_line(unknown, "no-such-job", "finetune-studio jobs")
    assert len(opened.read_text().splitlines()) == 2


def test_logs_follow_prints_lines_as_they_come_and_ends_with_the_job(server: RunningServer,
                                                                     tmp_path: Path) -> None:
    job_id = attached_run(server)
    report(server, job_id, 1, [log("first line", "stdout")])
    follower = subprocess.Popen([sys.executable, "-m", "finetune_studio", "logs", job_id, "-f",
                                 "--data-dir", str(server.data_dir)], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    assert follower.stdout is not None
    assert select.select([follower.stdout], [], [], 60)[0], "the first page of the log was not flushed"
    assert follower.stdout.readline() == "first line\n"
    report(server, job_id, 2, [log("second line"), ("end", {"state": "completed"})])
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out == "second line\n"


def test_follow_prints_user_warnings_once_and_no_library_noise(server: RunningServer,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The worker's streams go to the job's log; above the bar only the warnings meant for the user."""
    job_id = attached_run(server)
    noise = "/x/torch/utils/data/dataloader.py:759: UserWarning: 'pin_memory' argument is set as true"
    warning = "warning: data/train.jsonl: left out 3 examples whose prompt fills data.max_length"
    report(server, job_id, 1, [log(noise), log(warning, "stdout"), log("  super().__init__(loader)"),
                               ("progress", {"step": 5, "max_steps": 10, "epoch": 0.5}),
                               log(warning, "stdout"), ("end", {"state": "completed"})])
    assert follow(server.client, job_id).state == "completed"
    out, err = capsys.readouterr()
    assert (out + err).count(warning) == 1
    assert "UserWarning" not in out + err and "super()" not in out + err
    logged = [line["text"] for line in server.client.request("GET", f"/api/jobs/{job_id}/logs")["lines"]]
    assert noise in logged and logged.count(warning) == 2


def test_a_crashed_job_ends_in_one_error_line(server: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    """A crash's message carries the worker's last stderr lines: the terminal shows its first and last."""
    job_id = attached_run(server)
    message = ("the worker died (exit code 1). Last stderr lines:\nTraceback (most recent call last):\n"
               '  File "x.py", line 1, in <module>\nImportError: cannot import name \'y\'')
    report(server, job_id, 1, [("end", {"state": "failed", "error": {
        "type": "worker_crashed", "message": message, "hint": "Resume continues from the last checkpoint"}})])
    assert follow(server.client, job_id).state == "failed"
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: the worker died (exit code 1). Last stderr lines: ... ImportError: cannot import "
                      f"name 'y' (`finetune-studio logs {job_id}`) (worker_crashed); "
                      "hint: Resume continues from the last checkpoint"]
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [("status",), ("jobs",), ("logs", "x"), ("cancel", "x"), ("resume", "x")])
def test_commands_without_a_server_say_so_in_one_line(command: tuple[str, ...], tmp_path: Path) -> None:
    result = cli(*command, "--data-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    if command != ("status",):
        assert_one_error_line(result, "no server is running", "finetune-studio serve")


@pytest.mark.parametrize("case", ["missing", "folder", "not-utf8", "not-toml", "unknown-key"])
def test_a_bad_config_path_is_one_line_without_a_traceback(case: str, tmp_path: Path) -> None:
    config = tmp_path / "finetune.toml"
    expected = {"missing": "no such file", "folder": "is a folder", "not-utf8": "is not UTF-8 text",
                "not-toml": "is not valid TOML", "unknown-key": "did you mean 'batch_size'"}[case]
    if case == "folder":
        config.mkdir()
    elif case == "not-utf8":
        config.write_bytes(b'name = "caf\xe9"\n')
    elif case == "not-toml":
        config.write_text('model = models/minilm\n', encoding="utf-8")
    elif case == "unknown-key":
        config.write_text('model = "m"\n[data]\ntrain = "t.csv"\n[training]\nbatchsize = 8\n', encoding="utf-8")
    result = cli("run", str(config), "--data-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert_one_error_line(result, expected)
    assert not (tmp_path / "state").exists()  # refused before any server was started

