"""Captured tensors: arrays in `<state dir>/tensors/<id>.safetensors`, metadata in the store's `tensors`
table (written through its single writer). A capture is written once and read many times; the file is
written first and the row last, so a listed capture always has its arrays.

The files together stay within a budget (`Settings.capture_budget_bytes`): after each new capture the
oldest go, row first, then file. At start, files without a row (a crash between the two writes) are
removed and the budget applied, so a lowered budget takes effect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NotFound
from .jobs import new_id
from .store import Store
from .wire import INT64_MAX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capture:
    id: str
    name: str
    kind: str
    created_at: float
    bytes: int
    summary: dict[str, Any]
    view: dict[str, Any]


class Captures:
    def __init__(self, store: Store, folder: Path, budget: int) -> None:
        self.store = store
        self.folder = folder
        self.budget = budget
        self._lock = threading.Lock()  # adds and deletes keep `_total` right
        self._total = self._tidy()

    def add(self, name: str, kind: str, summary: dict[str, Any], view: dict[str, Any],
            arrays: dict[str, np.ndarray], size: int) -> Capture:
        from safetensors.numpy import save_file

        capture = Capture(id=new_id(), name=name, kind=kind,
                          created_at=time.time(), bytes=size, summary=summary, view=view)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(capture.id)
        # safetensors refuses an empty dict of tensors only in some versions; a marker keeps it uniform
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()} or {"_": np.zeros(0, "<f4")}, path)
        row = (capture.id, name, kind, capture.created_at, size, json.dumps(summary, allow_nan=False),
               json.dumps(view, allow_nan=False))
        try:
            self.store.write(lambda c: c.execute(
                "INSERT INTO tensors (id, name, kind, created_at, bytes, summary, view) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                row))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        with self._lock:
            self._total += path.stat().st_size
            self._keep_within_budget(keep=capture.id)
        return capture

    def list(self, limit: int, before: int | None = None) -> tuple[list[Capture], int | None]:
        """Newest first, `limit` at most, from the cursor `before` on; and the cursor of the next page, None
        after the last. The cursor is the row's rowid: it orders captures as they were added, and stays
        meaningful when captures in between are deleted."""
        rows = self.store.reader().execute(
            "SELECT id, name, kind, created_at, bytes, summary, view, rowid FROM tensors WHERE rowid < ? "
            "ORDER BY rowid DESC LIMIT ?", (INT64_MAX if before is None else before, limit + 1)).fetchall()
        page = [_capture(r[:-1]) for r in rows[:limit]]
        return page, (rows[limit - 1][-1] if len(rows) > limit else None)

    def delete(self, capture_id: str) -> None:
        with self._lock:
            if not self._delete(capture_id):
                raise NotFound(f"no captured tensor {capture_id!r}", hint="GET /api/tensors lists the captures")

    def _delete(self, capture_id: str) -> bool:
        gone = self.store.write(lambda c: c.execute("DELETE FROM tensors WHERE id = ?", (capture_id,)).rowcount)
        path = self._path(capture_id)
        if path.exists():
            self._total -= path.stat().st_size
            path.unlink()
        return bool(gone)

    def _keep_within_budget(self, keep: str) -> None:
        """Delete the oldest captures until the files fit the budget; never the one just added."""
        if self._total <= self.budget:
            return
        oldest = self.store.reader().execute("SELECT id FROM tensors WHERE id != ? ORDER BY rowid", (keep,))
        dropped = 0
        for (capture_id,) in oldest.fetchall():
            if self._total <= self.budget:
                break
            self._delete(capture_id)
            dropped += 1
        log.info("captures over their budget of %d MiB: the %d oldest deleted", self.budget >> 20, dropped)

    def _tidy(self) -> int:
        """Remove files that have no row; apply the budget; return the files' total size."""
        self.folder.mkdir(parents=True, exist_ok=True)
        known = {row[0] for row in self.store.reader().execute("SELECT id FROM tensors")}
        total = 0
        for path in self.folder.glob("*.safetensors"):
            if path.stem in known:
                total += path.stat().st_size
            else:
                path.unlink()
        self._total = total
        with self._lock:
            self._keep_within_budget(keep="")
        return self._total

    def get(self, capture_id: str) -> tuple[Capture, dict[str, np.ndarray]]:
        from safetensors.numpy import load_file

        row = self.store.reader().execute(
            "SELECT id, name, kind, created_at, bytes, summary, view FROM tensors WHERE id = ?",
            (capture_id,)).fetchone()
        if row is None:
            raise NotFound(f"no captured tensor {capture_id!r}", hint="GET /api/tensors lists the captures")
        arrays = load_file(self._path(capture_id))
        arrays.pop("_", None)
        return _capture(row), arrays

    def _path(self, capture_id: str) -> Path:
        return self.folder / f"{capture_id}.safetensors"


def _capture(row: tuple[Any, ...]) -> Capture:
    id_, name, kind, created_at, size, summary, view = row
    return Capture(id_, name, kind, created_at, size, json.loads(summary), json.loads(view))
