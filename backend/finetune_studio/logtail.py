"""A worker's output files -> the job's `log` events: every line stored once, across server restarts.

The worker appends to `JOB_DIR/stdout.log` and `JOB_DIR/stderr.log` (never a pipe to the server, which it
may outlive). The server reads the new complete lines from where it stopped and stores them as `log`
events whose source is (the file, the byte offset just after the line): the store keeps a source once,
however often the line is read. The offsets read up to are kept in `JOB_DIR/log-offsets.json` after each
batch is stored; a server that dies between storing and saving them reads those lines again at its
restart and the store skips them. So a restarted server neither loses nor repeats a line.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path

from .wire import ReporterEvent

STREAMS = ("stdout", "stderr")
# The store's (src_attempt, src_seq) of a log line: the file (reporters' attempts count from 1) and the
# byte offset just after the line.
SOURCE = {"stdout": -1, "stderr": -2}
OFFSETS_FILE = "log-offsets.json"
MAX_READ = 4 << 20  # bytes per file and read: a flood is stored in several batches
MAX_LINE = 1 << 20  # a longer run of bytes without a newline is stored as a line of its own


def log_path(job_dir: Path, stream: str) -> Path:
    return job_dir / f"{stream}.log"


class LogTail:
    """New lines of one job's two output files; not thread-safe (one supervisor reads a job's files)."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.offsets = {stream: 0 for stream in STREAMS}
        try:
            saved = json.loads((job_dir / OFFSETS_FILE).read_text(encoding="utf-8"))
            self.offsets.update({s: int(saved[s]) for s in STREAMS if s in saved})
        except (OSError, ValueError, TypeError):
            pass  # none yet (or damaged): reading from the start is safe, the store skips what it has

    def read(self, final: bool = False) -> dict[str, list[ReporterEvent]]:
        """The complete lines written since the last `commit`, as log events per stream. `final`: the
        worker has exited, so a last line without a newline is complete too."""
        found: dict[str, list[ReporterEvent]] = {}
        now = time.time()
        for stream in STREAMS:
            try:
                with log_path(self.job_dir, stream).open("rb") as handle:
                    handle.seek(self.offsets[stream])
                    data = handle.read(MAX_READ)
            except FileNotFoundError:
                continue
            events = []
            position = self.offsets[stream]
            whole = final and len(data) < MAX_READ  # read to the end of a file that no longer grows
            start = 0
            while start < len(data):
                end = data.find(b"\n", start)
                if end < 0:
                    if not whole and len(data) - start < MAX_LINE:
                        break  # the rest of this line is still being written (or not read yet)
                    end = min(len(data), start + MAX_LINE) - 1
                line = data[start:end + 1]
                text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
                events.append(ReporterEvent(seq=position + end + 1, type="log", time=now,
                                            data={"stream": stream, "text": text}))
                start = end + 1
            if events:
                found[stream] = events
        return found

    def commit(self, read: dict[str, list[ReporterEvent]]) -> None:
        """The lines of `read` are stored: the next read starts after them (and so does a restarted server)."""
        if not read:
            return
        for stream, events in read.items():
            self.offsets[stream] = events[-1].seq
        partial = self.job_dir / (OFFSETS_FILE + ".tmp")
        partial.write_text(json.dumps(self.offsets), encoding="utf-8")
        os.replace(partial, self.job_dir / OFFSETS_FILE)


def last_lines(path: Path, start: int, count: int) -> list[str]:
    """The last `count` lines of `path` after byte `start` (one attempt's stderr, for a crash message)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(start, size - (64 << 10)))
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = deque(data.decode("utf-8", errors="replace").splitlines(), maxlen=count)
    return list(lines)
