"""Captured tensors: arrays in `<state dir>/tensors/<id>.safetensors`, metadata in the store's `tensors`
table (written through its single writer). A capture is written once and read many times; the file is
written first and the row last, so a listed capture always has its arrays."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NotFound
from .jobs import new_id
from .store import Store


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
    def __init__(self, store: Store, folder: Path) -> None:
        self.store = store
        self.folder = folder

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
        return capture

    def list(self, limit: int) -> list[Capture]:
        rows = self.store.reader().execute(
            "SELECT id, name, kind, created_at, bytes, summary, view FROM tensors "
            "ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [_capture(r) for r in rows]

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
