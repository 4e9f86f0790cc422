"""The plugin's Kotlin core as a real client of the real server: `FollowJobMain` (built from
`plugin/src/main/kotlin/dev/finetunestudio/core` by `plugin/scripts/test-core.sh`) submits a tiny job over
HTTP, follows its SSE stream to the end and prints every event; the events must be the server's, in order,
each once, ending in `completed`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import RunningServer

ROOT = Path(__file__).parent.parent
TEST_CORE = ROOT / "plugin" / "scripts" / "test-core.sh"


@pytest.fixture(scope="module")
def core_classpath() -> str:
    """Compiles the core when its sources changed (kotlinc from npm, first time only); its classpath."""
    built = subprocess.run(["bash", str(TEST_CORE), "--classpath"], capture_output=True, text=True,
                           timeout=900)
    assert built.returncode == 0, f"building the Kotlin core failed:\n{built.stderr[-3000:]}"
    return built.stdout.strip().splitlines()[-1]


def follow(classpath: str, server: RunningServer, spec: dict[str, Any],
           tmp_path: Path) -> tuple[int, list[str], str]:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    command = ["java", "-cp", classpath, "dev.finetunestudio.core.FollowJobMain", server.url, server.token,
               str(spec_file)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    return run.returncode, run.stdout.splitlines(), run.stderr


def parse_events(lines: list[str]) -> list[tuple[int, str, dict[str, Any]]]:
    events = []
    for line in lines:
        if line.startswith("event "):
            _, seq, kind, data = line.split(" ", 3)
            events.append((int(seq), kind, json.loads(data)))
    return events


def test_kotlin_client_follows_a_real_job_to_completed(core_classpath: str, server: RunningServer,
                                                        tiny_spec: dict[str, Any], tmp_path: Path) -> None:
    code, lines, stderr = follow(core_classpath, server, tiny_spec, tmp_path)
    tail = "\n".join(lines[-20:])
    assert code == 0, f"FollowJobMain exited {code}\nstdout:\n{tail}\nstderr:\n{stderr}"

    submitted = lines[0].split()
    assert submitted[0] == "submitted" and submitted[2] == "queued"
    job_id = submitted[1]
    assert lines[-1] == f"finished {job_id} completed"

    events = parse_events(lines)
    seqs = [seq for seq, _, _ in events]
    assert seqs == sorted(set(seqs)), "events out of order or repeated"
    metrics = [data for _, kind, data in events if kind == "metric"]
    assert metrics, "no metric event reached the Kotlin client"
    assert any(name.endswith("loss") for point in metrics for name in point["values"])  # "train/loss"
    assert all(isinstance(point["step"], int) for point in metrics)
    states = [data["state"] for _, kind, data in events if kind == "state"]
    assert states[-1] == "completed"
    assert "running" in states
    assert server.client.job(job_id).state == "completed"


def test_kotlin_client_reports_a_bad_spec(core_classpath: str, server: RunningServer,
                                          tiny_spec: dict[str, Any], tmp_path: Path) -> None:
    """A 422 reaches the Kotlin side as one message naming the field, and exit code 3."""
    bad = dict(tiny_spec, training={**tiny_spec["training"], "learning_rate": 5})
    code, lines, stderr = follow(core_classpath, server, bad, tmp_path)
    assert code == 3
    assert lines == []
    assert "HTTP 422" in stderr and "training.learning_rate" in stderr
