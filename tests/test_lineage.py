"""Lineage (issue 16): what a run came from, exactly what changed between two runs, and whether the working
tree still holds what a run came from (before "Clone as new job")."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import RunningServer, start_server
from finetune_studio import lineage, lineagediff
from finetune_studio.errors import ApiError
from finetune_studio.spec import parse_spec
from finetune_studio.testing.tiny_models import sentences
from finetune_studio.wire import RunCreate

CODE = "learning_rate = 0.01\nepochs = 2\nprint('prepare the data')\n"


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout


def write_rows(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with a script, the data (committed) and an ignored state folder."""
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "prepare.py").write_text(CODE, encoding="utf-8")
    (folder / ".gitignore").write_text(".finetune-studio*\n", encoding="utf-8")  # + the tests' server log
    write_rows(folder / "data" / "train.csv", sentences(30, seed=5))
    git(folder, "init", "-q")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "first")
    return folder


@pytest.fixture
def project_server(project: Path) -> Iterator[RunningServer]:
    running = start_server(project / ".finetune-studio")
    yield running
    running.stop()


def spec_body(model: Path, project: Path) -> dict[str, Any]:
    # the scheduler would start these; max_steps keeps them short, eval off
    return {"name": "lineage", "task": "text-classification", "model": str(model),
            "data": {"train": str(project / "data" / "train.csv"), "max_length": 16},
            "training": {"max_steps": 1, "eval_strategy": "no", "save_strategy": "no"}}


def test_two_runs_differ_by_exactly_one_line_of_code_and_one_row_of_data(
        project: Path, project_server: RunningServer, tiny_bert: Path) -> None:
    client = project_server.client
    first = client.submit(spec_body(tiny_bert, project))
    recorded = client.request("GET", f"/api/jobs/{first.id}/lineage")
    assert recorded["code"]["commit"] == git(project, "rev-parse", "HEAD").strip()
    assert recorded["code"]["diff"] == "" and recorded["code"]["files"] == {}
    assert recorded["data"][0]["rows"] == 30 and len(recorded["data"][0]["sha256"]) == 64
    assert recorded["environment"]["torch"] and recorded["environment"]["finetune-studio"]
    unchanged = client.request("GET", f"/api/jobs/{first.id}/lineage/worktree")
    assert unchanged["matches"] is True
    assert unchanged["commit_then"] == unchanged["commit_now"] == recorded["code"]["commit"]
    assert (unchanged["changed_files"], unchanged["data_changed"], unchanged["note"]) == ([], [], None)

    (project / "prepare.py").write_text(CODE.replace("epochs = 2", "epochs = 3"), encoding="utf-8")
    rows = sentences(30, seed=5)
    rows[11] = ("a changed review that was not there", rows[11][1])
    write_rows(project / "data" / "train.csv", rows)
    assert first.spec is not None  # cloned through the API: the run's exact spec, submitted again
    second = client.submit(first.spec.model_dump(mode="json"))
    assert second.spec == first.spec

    changes = client.request("GET", f"/api/jobs/{first.id}/lineage/diff/{second.id}")

    assert changes["spec"] == [] and changes["environment"] == []
    assert [c["path"] for c in changes["code"]] == ["prepare.py"]
    lines = changes["code"][0]["diff"].splitlines()
    assert [line for line in lines if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-epochs = 2", "+epochs = 3"]
    (data,) = changes["data"]
    assert data["field"] == "data.train"
    assert (data["changed_rows"], data["added_rows"], data["removed_rows"]) == ([12], 0, 0)
    assert "a changed review" in data["rows"][0]["b"]
    assert data["rows"][0]["a"] is None  # the first run's file is gone: only its hash is known

    # before cloning the first run: the working tree no longer holds what it came from, and says what
    since = client.request("GET", f"/api/jobs/{first.id}/lineage/worktree")
    assert since["matches"] is False and since["commit_now"] == since["commit_then"]
    assert [(f["path"], f["diff"]) for f in since["changed_files"]] == [(c["path"], c["diff"]) for c in changes["code"]]
    (data,) = since["data_changed"]
    assert (data["field"], data["changed_rows"]) == ("data.train", [12])
    assert data["a"] == recorded["data"][0] and data["b"]["sha256"] != data["a"]["sha256"]
    assert "a changed review" in data["rows"][0]["b"]
    assert client.request("GET", f"/api/jobs/{second.id}/lineage/worktree")["matches"] is True
    with pytest.raises(ApiError) as unknown:
        client.request("GET", "/api/jobs/no-such-job/lineage/worktree")
    assert unknown.value.status == 404
    for job in (first, second):
        end(project_server, job.id)


def end(server: RunningServer, job_id: str) -> None:
    """Only a job's lineage matters here: cancel it (unless it ended), and wait, as workers outlive the server."""
    try:
        server.client.cancel(job_id)
    except ApiError as error:
        assert error.status == 409  # it ended already
    server.wait_for(job_id)


def test_a_folder_that_is_not_a_repository_still_records_data_and_versions(
        tmp_path: Path, tiny_bert: Path, classification_data: tuple[Path, Path]) -> None:
    train, dev = classification_data
    spec = parse_spec({"task": "text-classification", "model": str(tiny_bert),
                       "data": {"train": str(train), "eval": str(dev)}}, tmp_path)
    job_folder = tmp_path / "state" / "jobs" / "j1"

    recorded = lineage.record_job(job_folder, "j1", spec, tmp_path, tmp_path / "state")

    assert recorded.code is not None and recorded.code.repository is None
    assert recorded.code.note == "not a git repository"
    assert [(d.field, d.rows) for d in recorded.data] == [("data.train", 160), ("data.eval", 40)]
    assert recorded.data[0].size == train.stat().st_size
    assert recorded.environment["transformers"] and recorded.environment["python"]
    assert lineage.read(job_folder, "j1") == recorded
    same = lineage.record_job(tmp_path / "state" / "jobs" / "j2", "j2", spec, tmp_path, tmp_path / "state")
    changes = lineagediff.diff(recorded, same, job_folder, tmp_path / "state" / "jobs" / "j2")
    assert (changes.spec, changes.code, changes.data, changes.environment) == ([], [], [], [])
    assert changes.code_note is not None
    check = lineagediff.worktree(recorded, job_folder, tmp_path / "state")
    assert check.matches is None and check.repository is None and check.data_changed == []
    assert check.note == f"{tmp_path} was not a git repository when the run started (not a git repository): " \
                         "its code cannot be compared"


def test_an_attached_run_records_its_script(project: Path, tmp_path: Path) -> None:
    script = project / "prepare.py"
    script.write_text("import time\ntime.sleep(60)\n", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "prepare.py"], cwd=project)
    try:
        time.sleep(0.5)
        recorded = lineage.record_run(tmp_path / "run", "r1", RunCreate(pid=process.pid, training_args={"seed": 1}),
                                      project / ".finetune-studio")
    finally:
        process.kill()
        process.wait()
    assert recorded.script == str(script)
    assert recorded.code is not None and recorded.code.files == {"prepare.py": "import time\ntime.sleep(60)\n"}
    assert "-epochs = 2" in recorded.code.diff
    assert recorded.training_args == {"seed": 1} and recorded.environment["torch"]
    assert lineagediff.worktree(recorded, tmp_path / "run", project / ".finetune-studio").matches is True
    script.write_text("import time\ntime.sleep(61)\n", encoding="utf-8")
    check = lineagediff.worktree(recorded, tmp_path / "run", project / ".finetune-studio")
    assert check.matches is False and [f.path for f in check.changed_files] == ["prepare.py"]
    assert "+time.sleep(61)" in check.changed_files[0].diff
