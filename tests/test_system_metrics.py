"""System series of every process (issue 13): CPU % and resident memory per rank, read for real; the GPU
readings through a stand-in for `torch.cuda` (no GPU on this machine); a real 2-process CPU job (torchrun,
gloo) whose ranks gather their samples to rank 0, and its job page in Chromium: a collapsed "System"
chart group under the other charts, and the per-device and global batch in the Config tab."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from conftest import RunningServer, start_server
from finetune_studio.system_metrics import MB, SystemSampler, gpu_usage
from finetune_studio.testing.dashboard_driver import chart, open_dashboard, wait_until

TRAINING_TIMEOUT = 240  # seconds: each rank imports torch and transformers before its first step


def test_a_sample_reads_this_process_and_names_the_next_step_from_the_step_rate() -> None:
    sampler = SystemSampler(start_step=0, gather=False)
    assert sampler.due(1) and not sampler.due(0)  # the first step's end gets a point
    burn = time.process_time() + 0.2
    while time.process_time() < burn:
        pass
    values = sampler.take(1, rank=0)
    assert set(values) == {"system/rank0/cpu_percent", "system/rank0/rss_mb"}  # no GPU here
    assert values["system/rank0/cpu_percent"] > 10  # the busy loop, since the sampler began
    assert values["system/rank0/rss_mb"] > 50  # torch is imported
    # 1 step in >= 0.2 s: at most 5 steps/s, so the next sample within 5 s is at most 25 steps later.
    assert 2 <= sampler.next_step <= 26 and not sampler.due(sampler.next_step - 1)


class StandInCuda:
    """Stands in for `torch.cuda` (this machine has no GPU): answers as an 80 GB device would."""

    def current_device(self) -> int:
        return 0

    def mem_get_info(self, device: int) -> tuple[int, int]:
        return 60_000 * MB, 80_000 * MB  # free, total

    def utilization(self, device: int) -> int:
        return 87

    def power_draw(self, device: int) -> int:
        return 312_500  # mW


def test_gpu_readings_are_device_memory_utilisation_and_power_and_memory_alone_without_nvml() -> None:
    assert gpu_usage(StandInCuda(), nvml=True) == {
        "gpu_memory_used_mb": 20_000, "gpu_memory_total_mb": 80_000, "gpu_utilization_percent": 87.0,
        "gpu_power_w": 312.5}
    assert gpu_usage(StandInCuda(), nvml=False) == {"gpu_memory_used_mb": 20_000, "gpu_memory_total_mb": 80_000}


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("system") / ".finetune-studio")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def two_process_job(studio: RunningServer, tiny_bert: Path, classification_data: tuple[Path, Path]) -> str:
    train, dev = classification_data
    job = studio.client.submit({
        "name": "two ranks", "task": "text-classification", "model": str(tiny_bert),
        "data": {"train": str(train), "eval": str(dev), "max_length": 32},
        "training": {"max_steps": 8, "batch_size": 8, "gradient_accumulation_steps": 2, "learning_rate": 1e-3,
                     "logging_steps": 1, "eval_strategy": "no", "save_strategy": "no"},
        "resources": {"processes": 2}})
    done = studio.wait_for(job.id, timeout=TRAINING_TIMEOUT)
    assert done.state == "completed", done.error
    return job.id


def test_a_two_process_job_has_system_series_of_both_ranks(studio: RunningServer, two_process_job: str) -> None:
    series = studio.client.metrics(two_process_job)["series"]
    for rank in (0, 1):
        cpu, rss = series[f"system/rank{rank}/cpu_percent"], series[f"system/rank{rank}/rss_mb"]
        assert cpu["step"][0] == 1 and rss["step"][0] == 1  # sampled at the first step's end
        assert all(v is not None and v >= 0 for v in cpu["value"])
        assert all(v is not None and 50 < v < 64_000 for v in rss["value"])
    assert series["train/loss"]["step"] == list(range(1, 9))  # the gathers did not disturb training


@pytest.mark.browser
def test_job_page_charts_system_in_a_collapsed_group_and_shows_the_global_batch(
        studio: RunningServer, two_process_job: str, page: Any) -> None:
    open_dashboard(page, studio.url, studio.token, f"#job={two_process_job}")
    group = page.locator("#chart-group-system")
    expect(group.locator("summary")).to_contain_text("System")
    expect(page.locator("#system-note")).to_have_text("4 charts · ranks 0, 1")
    assert group.evaluate("(el) => el.open") is False
    # The loss chart stays first, and the System group comes after every other chart.
    expect(page.locator("#charts .chart-card").first).to_have_attribute("data-series", "train/loss")
    assert page.evaluate("() => document.getElementById('charts')"
                         ".compareDocumentPosition(document.getElementById('chart-group-system')) & 4")
    assert chart(page, "system/rank1/rss_mb") is None  # not drawn while collapsed
    group.locator("summary").click()
    drawn = wait_until(lambda: chart(page, "system/rank1/rss_mb"), 20, what="the rank 1 memory chart")
    assert drawn["traces"][0]["y"][0] > 50
    expect(page.locator('.chart-card[data-series="system/rank1/rss_mb"] .u-title')).to_have_text(
        "rank 1: resident memory (MiB)")

    page.locator('a[data-tab="config"]').click()
    expect(page.locator("#layout-executor")).to_have_text("local: torchrun, DDP (gloo)")
    expect(page.locator("#layout-workers")).to_have_text("2")
    expect(page.locator("#layout-where")).to_have_text("this machine: cpu ×2 (gloo)")
    expect(page.locator("#layout-batch")).to_have_text("8")
    expect(page.locator("#layout-global-batch")).to_have_text("32 (8 × 2 workers × 2 accumulation)")
