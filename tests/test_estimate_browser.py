"""Issue 16 in Chromium: the new-job form shows the estimate as the user edits; Compare shows the
lineage diff of two runs (spec, code, data and environment)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from conftest import RunningServer
from finetune_studio.testing.dashboard_driver import open_dashboard


def test_the_form_shows_the_estimate_as_the_user_edits(server: RunningServer, tiny_spec: dict[str, Any],
                                                       page: Any) -> None:
    open_dashboard(page, server.url, server.token, "#new")
    page.fill("[id='f-model']", tiny_spec["model"])
    page.fill("[id='f-data.train']", tiny_spec["data"]["train"])
    # the first estimate measures the CPU once (a child process): seconds on a busy machine
    expect(page.locator("#estimate-verdict")).to_have_text("Fits", timeout=120_000)
    expect(page.locator("#estimate")).to_contain_text("BertForSequenceClassification")
    expect(page.locator("#estimate")).to_contain_text("per epoch")
    page.fill("[id='f-training.batch_size']", "4")
    expect(page.locator("#estimate")).to_contain_text("(40 steps", timeout=30_000)


def test_compare_shows_what_changed_between_two_runs(server: RunningServer, tiny_spec: dict[str, Any],
                                                     page: Any) -> None:
    quick = {**tiny_spec, "training": {**tiny_spec["training"], "max_steps": 1, "eval_strategy": "no",
                                       "save_strategy": "no"}}
    first = server.client.submit(quick)
    second = server.client.submit({**quick, "training": {**quick["training"], "learning_rate": 0.005}})
    open_dashboard(page, server.url, server.token, f"#compare={first.id},{second.id}")
    spec = page.locator("#lineage-spec")
    expect(spec).to_contain_text("training.learning_rate")
    expect(spec).to_contain_text("0.005")
    expect(page.locator("#lineage-code")).to_contain_text("no git repository")
    expect(page.locator("#lineage-data")).to_contain_text("The data files are identical.")
    for job in (first, second):  # workers outlive the server: let them end here
        server.wait_for(job.id)
