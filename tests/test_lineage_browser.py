"""Issue 16 in Chromium: "Clone as new job" opens the form filled with the run's exact spec, says whether
the working tree still matches the run's lineage, and submits the spec unchanged."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from conftest import RunningServer, start_server
from finetune_studio.errors import ApiError
from finetune_studio.testing.dashboard_driver import open_dashboard


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


@pytest.fixture
def project_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server whose project folder is a git repository with one committed script."""
    (tmp_path / "prepare.py").write_text("epochs = 2\n", encoding="utf-8")
    (tmp_path / ".gitignore").write_text(".finetune-studio*\n", encoding="utf-8")  # the state and the server log
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    running = start_server(tmp_path / ".finetune-studio")
    yield running
    running.stop()


def test_clone_fills_the_form_with_the_exact_spec_and_says_whether_the_tree_matches(
        project_server: RunningServer, tmp_path: Path, tiny_spec: dict[str, Any], page: Any) -> None:
    server = project_server
    jobs = []
    try:
        # keys the form does not show (training.args, data.eval) and a float the form shows as text
        first = server.client.submit({**tiny_spec, "training": {
            **tiny_spec["training"], "max_steps": 1, "eval_strategy": "no", "save_strategy": "no",
            "learning_rate": 1e-05, "args": {"dataloader_drop_last": True}}})
        jobs.append(first.id)
        open_dashboard(page, server.url, server.token, f"#job={first.id}")
        page.click("#btn-clone")
        expect(page.locator("[id='f-model']")).to_have_value(tiny_spec["model"])
        expect(page.locator("[id='f-training.learning_rate']")).to_have_value("0.00001")
        expect(page.locator("#worktree-verdict")).to_contain_text("The working tree matches the run's lineage")
        expect(page.locator("#worktree-verdict")).to_have_class("matches")
        page.click("#submit-job")
        page.wait_for_function("location.hash.startsWith('#job=')")
        second = server.client.job(page.evaluate("new URLSearchParams(location.hash.slice(1)).get('job')"))
        jobs.append(second.id)
        assert second.id != first.id and second.spec == first.spec

        (tmp_path / "prepare.py").write_text("epochs = 3\n", encoding="utf-8")
        page.goto(f"{server.url}/#new={first.id}")
        expect(page.locator("#worktree-verdict")).to_contain_text("The working tree differs from the run's lineage")
        expect(page.locator("#worktree-verdict")).to_have_class("differs")
        expect(page.locator("#worktree-files")).to_contain_text("Files changed since: prepare.py")
        expect(page.locator("#worktree-files")).to_contain_text("+epochs = 3")
    finally:
        for job_id in jobs:
            end(server, job_id)


def end(server: RunningServer, job_id: str) -> None:
    """Only a job's lineage matters here: cancel it (unless it ended), and wait, as workers outlive the server."""
    try:
        server.client.cancel(job_id)
    except ApiError as error:
        assert error.status == 409  # it ended already
    server.wait_for(job_id)
