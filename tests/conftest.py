"""Real parts for tests: a tiny model folder, small data files, and the real server (uvicorn) on a free
port with its own state folder, started as users start it (`python -m finetune_studio serve`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from finetune_studio.client import StudioClient  # noqa: E402
from finetune_studio.wire import FINISHED_STATES, Job  # noqa: E402
from tiny_models import build_tiny_bert, write_classification_data  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


DISCOVERY_VARIABLES = ("FINETUNE_STUDIO_URL", "FINETUNE_STUDIO_TOKEN", "FINETUNE_STUDIO_HOME")


def _isolate(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """No discovery variable, and an empty working folder outside the checkout: a test (or a server,
    script or worker it starts) finds only the servers it started itself, never the one that
    `make demo` leaves running in the checkout's `.finetune-studio/` (docs/discovery.md)."""
    for name in DISCOVERY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(folder)


@pytest.fixture(scope="session", autouse=True)
def _hermetic_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same for session- and module-scoped fixtures, which start before any test's own."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(monkeypatch, tmp_path_factory.mktemp("session-cwd"))
        yield


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test: its own empty working folder and a clean environment."""
    _isolate(monkeypatch, tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def classification_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_classification_data(tmp_path_factory.mktemp("data"))


@pytest.fixture
def tiny_spec(tiny_bert: Path, classification_data: tuple[Path, Path]) -> dict[str, Any]:
    """A text-classification job on the tiny BERT that takes a few seconds on a CPU."""
    train, dev = classification_data
    return {"name": "tiny", "task": "text-classification", "model": str(tiny_bert),
            "data": {"train": str(train), "eval": str(dev), "max_length": 32},
            "training": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "logging_steps": 1,
                         "eval_strategy": "epoch", "save_strategy": "epoch"}}


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
    log = open(data_dir.parent / f"{data_dir.name}-server.log", "ab")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "finetune_studio", "serve", "--data-dir", str(data_dir),
                                "--port", "0"], stdout=log, stderr=log, env=env)
    deadline = time.time() + 60
    while not server_json.is_file():
        if process.poll() is not None or time.time() > deadline:
            raise AssertionError("the server did not start:\n" + Path(log.name).read_text())
        time.sleep(0.05)
    info = json.loads(server_json.read_text())
    return RunningServer(data_dir, process, info["url"], info["token"], StudioClient(info["url"], info["token"]))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path / ".finetune-studio")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (`make test` installs it; never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    from dashboard_driver import launch

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def console() -> Any:
    from dashboard_driver import Console

    return Console()


@pytest.fixture
def page(browser: Any, console: Any) -> Iterator[Any]:
    """A fresh browser profile per test (no cookie); fails the test on any unexpected console error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    console.attach(tab)
    yield tab
    context.close()
    assert console.unexpected() == [], "errors in the browser console"
