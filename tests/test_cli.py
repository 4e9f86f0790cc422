"""The command line as users type it: serve's guard, run's progress and exit code, jobs, the demo
(the other commands: test_cli_commands.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomli_w

from conftest import RunningServer


def cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finetune_studio", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, HF_HUB_OFFLINE="1"))


def test_serve_refuses_a_public_host_without_allow_remote(tmp_path: Path) -> None:
    result = cli("serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr and "--allow-remote" in result.stderr


def test_run_follows_a_job_to_completion_then_jobs_lists_it(server: RunningServer, tiny_spec: dict[str, Any],
                                                             tmp_path: Path) -> None:
    """The terminal shows one bar and no library noise; the worker's output is in the job's log."""
    tiny_spec["training"]["epochs"] = 1
    config = tmp_path / "finetune.toml"
    config.write_text(tomli_w.dumps(tiny_spec), encoding="utf-8")
    raw = subprocess.run([sys.executable, "-m", "finetune_studio", "run", str(config), "--data-dir",
                          str(server.data_dir)], cwd=tmp_path, capture_output=True, timeout=600,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    # Bytes: text mode would turn the bar's carriage returns into new lines.
    stdout, stderr = raw.stdout.decode(), raw.stderr.decode()
    assert raw.returncode == 0, stderr[-2000:]
    job_id = re.search(r"job (\S+) \(tiny\) submitted", stdout).group(1)  # type: ignore[union-attr]
    assert "20/20" in stderr  # the progress bar reached the last step
    assert "loss=" in stderr and "eval @ step 20: loss=" in stdout
    bar_lines = [line for line in stderr.split("\n") if f"{job_id}:" in line]
    assert len(bar_lines) == 1, stderr  # drawn in place, never broken by other output
    assert not re.search(r"Warning\b|warnings\.warn|LOAD REPORT|Traceback", stdout + stderr), stdout + stderr
    log = [line["text"] for line in server.client.request("GET", f"/api/jobs/{job_id}/logs")["lines"]]
    assert "attempt 1: preparing text-classification with " + tiny_spec["model"] in log
    assert any("LOAD REPORT" in line for line in log)  # the library's report is kept there
    # no warning caused by the project's own defaults (gradient_checkpointing, pin_memory on the CPU)
    assert not [line for line in log if re.search(r"\w+Warning: ", line)], log
    listing = cli("jobs", "--data-dir", str(server.data_dir), cwd=tmp_path)
    assert "completed" in listing.stdout and "tiny" in listing.stdout


def test_run_exits_non_zero_with_the_error_and_hint(server: RunningServer, tiny_spec: dict[str, Any],
                                                    tmp_path: Path) -> None:
    tiny_spec["data"]["text_column"] = "review"
    config = tmp_path / "finetune.toml"
    config.write_text(tomli_w.dumps(tiny_spec), encoding="utf-8")
    result = cli("run", str(config), "--data-dir", str(server.data_dir), cwd=tmp_path)
    assert result.returncode == 1
    # refused at submit now (issue 11), naming the field and the columns that exist; no job was queued
    assert "data.text_column" in result.stderr and "no column 'review'" in result.stderr
    assert "its columns are: text, label" in result.stderr and "hint: " in result.stderr
    assert "Traceback" not in result.stderr and server.client.jobs() == []


def test_run_refuses_a_bad_toml_before_submitting(tmp_path: Path) -> None:
    config = tmp_path / "finetune.toml"
    config.write_text('model = "m"\n[data]\ntrain = "t.csv"\n[training]\nbatchsize = 8\n', encoding="utf-8")
    result = cli("run", str(config), "--data-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert result.returncode == 1
    assert "training.batchsize: unknown key; did you mean 'batch_size'?" in result.stderr


def test_demo_fine_tunes_minilm_on_movie_reviews(tmp_path: Path) -> None:
    """`finetune-studio demo --quick`: the real pretrained MiniLM on the real snippets, offline."""
    result = cli("demo", "--quick", "--folder", str(tmp_path / "demo"), "--data-dir", str(tmp_path / "state"),
                 cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "eval accuracy" in result.stdout and "majority class" in result.stdout
    assert (tmp_path / "demo" / "finetune.toml").is_file()
    # it says how to come back to the server it leaves running, and how to stop it
    assert f"finetune-studio open --data-dir {tmp_path / 'state'}" in result.stdout
    assert f"finetune-studio stop --data-dir {tmp_path / 'state'}" in result.stdout
    stopped = cli("stop", "--data-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped the server" in stopped.stdout, stopped.stderr
