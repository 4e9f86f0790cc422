"""Fixtures of real parts (`finetune_studio.testing`): a tiny model folder, small data files, and the real
server on a free port with its own state folder; every test hermetic (its own folder and environment)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finetune_studio.testing import RunningServer, start_server
from finetune_studio.testing.tiny_models import build_tiny_bert, write_classification_data

__all__ = ["ARTIFACTS", "RunningServer", "start_server"]  # what test modules import from here

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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path / ".finetune-studio")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (`make test` installs it; never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    from finetune_studio.testing.dashboard_driver import launch

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def console() -> Any:
    from finetune_studio.testing.dashboard_driver import Console

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
