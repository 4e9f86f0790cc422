"""One server per state folder: an exclusive OS lock on `D/server.lock`, held for the server's lifetime.

`serve` takes it before anything else (before the database, the socket or `server.json`). It is an
`flock`, so the kernel drops it when the process ends, however it ends (`kill -9` too): a crashed server
never blocks the next one. The file holds the owner's pid so that a refused second server can name it;
`server.json` adds the owner's URL. The descriptor is not inherited by workers (Python opens files
non-inheritable), so a worker that outlives its server never holds the folder.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

LOCK_FILE = "server.lock"


class FolderInUse(RuntimeError):
    """Another live server holds the state folder; the message names it."""


def hold(data_dir: Path) -> int:
    """Take the folder's lock for this process; returns the descriptor to keep open. Raises FolderInUse."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 64).decode("ascii", errors="replace").strip()
        os.close(fd)
        raise FolderInUse(_owner_message(data_dir, owner)) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _owner_message(data_dir: Path, owner: str) -> str:
    url = None
    try:
        info = json.loads((data_dir / "server.json").read_text(encoding="utf-8"))
        if str(info.get("pid")) == owner:
            url = info.get("url")
    except (OSError, ValueError, AttributeError):
        pass  # the owner is still starting: it writes server.json once it listens
    where = f" at {url}" if url else " (still starting: no server.json yet)"
    return (f"{data_dir} is already served by process {owner or '?'}{where}; one server per state folder: "
            f"use that one, or stop it first (`finetune-studio stop --data-dir {data_dir}`)")
