"""The real server for the benchmarks, started as users start it (tests/conftest.py's `start_server`),
with torch's default threads rather than the tests' one thread per worker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import start_server  # noqa: E402
from finetune_studio.client import StudioClient  # noqa: E402


@contextmanager
def studio_server(folder: Path) -> Iterator[StudioClient]:
    folder.parent.mkdir(parents=True, exist_ok=True)
    running = start_server(folder, threads=None)
    try:
        yield running.client
    finally:
        running.stop()
