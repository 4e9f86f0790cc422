"""What a run came from, recorded when it starts.

At submit (`record_job`) and when an attached run opens (`record_run`) the job folder gets `lineage.json`:
the spec (or the script's TrainingArguments), the git state of the project folder (or the script's
folder): commit, branch, the uncommitted diff and the text of each changed or new file, the data files
(size, mtime, rows, SHA-256; a hash per row in `lineage-rows-<field>.npy`), and the versions of the
libraries that train. Git runs locally through its CLI; nothing leaves the machine. `lineagediff.py`
compares two lineages, or one with the working tree now.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .errors import DataError, NotFound
from .spec import JobSpec
from .wire import CodeState, DataFile, Lineage, RunCreate

FILE = "lineage.json"
PACKAGES = ("torch", "transformers", "peft", "datasets", "accelerate", "finetune-studio")
MAX_FILE_BYTES = 256 * 1024  # a changed file's text is kept up to this size
MAX_DIFF_BYTES = 1024 * 1024
GIT_TIMEOUT_S = 20


def record_job(folder: Path, job_id: str, spec: JobSpec, project_dir: Path, state_dir: Path) -> Lineage:
    """A managed job's lineage: the project folder's code (without the state folder and the data files,
    which have their own part) and the spec's data files."""
    data = [(name, path) for name, path in (("data.train", spec.data.train), ("data.eval", spec.data.eval)) if path]
    folder.mkdir(parents=True, exist_ok=True)
    lineage = Lineage(job_id=job_id, recorded_at=time.time(), spec=spec,
                      code=code_state(project_dir, [state_dir] + [Path(p) for _, p in data]),
                      data=[_data_file(folder, name, path, spec) for name, path in data],
                      environment=environment(sys.executable))
    _write(folder, lineage)
    return lineage


def record_run(folder: Path, job_id: str, run: RunCreate, state_dir: Path) -> Lineage:
    """An attached run's lineage: its script's folder and its interpreter's libraries, found from its pid."""
    script, cwd, python = _process(run.pid)
    source = script.parent if script else cwd
    lineage = Lineage(job_id=job_id, recorded_at=time.time(), training_args=run.training_args,
                      script=str(script) if script else None,
                      code=code_state(source, [state_dir]) if source else None,
                      environment=environment(python) if python else {})
    _write(folder, lineage)
    return lineage


def read(folder: Path, job_id: str) -> Lineage:
    path = folder / FILE
    if not path.is_file():
        raise NotFound(f"job {job_id} has no lineage: it was submitted before lineage was recorded",
                       hint="lineage is recorded for jobs submitted from now on")
    return Lineage.model_validate_json(path.read_text(encoding="utf-8"))


def _write(folder: Path, lineage: Lineage) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILE).write_text(lineage.model_dump_json(indent=1), encoding="utf-8")


def _process(pid: int | None) -> tuple[Path | None, Path | None, str | None]:
    """The script (`python train.py` -> train.py), working folder and interpreter of a process."""
    import psutil

    if pid is None:
        return None, None, None
    try:
        process = psutil.Process(pid)
        cmdline, cwd, python = process.cmdline(), Path(process.cwd()), process.exe()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None, None, None
    scripts = [arg for arg in cmdline[1:] if arg.endswith(".py")]
    # a virtual environment's python is a link to the base interpreter, which exe() resolves: the path
    # the script was started with finds the environment's packages
    if cmdline and "/" in cmdline[0] and (cwd / cmdline[0]).is_file():
        python = str(cwd / cmdline[0])
    return ((cwd / scripts[0]).resolve() if scripts else None), cwd, python


def git(folder: Path, *args: str) -> str | None:
    """git's output, or None where git fails (not a repository, no commit yet, no git)."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None


def code_state(folder: Path, exclude: list[Path]) -> CodeState:
    folder = folder.resolve()
    state = CodeState(folder=str(folder))
    top = git(folder, "rev-parse", "--show-toplevel")
    if top is None:
        state.note = "not a git repository" if git(Path.cwd(), "--version") else "git is not installed"
        return state
    state.repository = top.strip()
    state.commit = (git(folder, "rev-parse", "--verify", "HEAD") or "").strip() or None
    state.branch = (git(folder, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None
    paths = pathspec(folder, exclude)
    untracked = (git(folder, "ls-files", "--others", "--exclude-standard", "--full-name", *paths) or "").split("\n")
    changed = []
    if state.commit:
        state.diff = git(folder, "diff", "HEAD", "--no-color", "--no-ext-diff", *paths) or ""
        changed = (git(folder, "diff", "HEAD", "--name-only", *paths) or "").split("\n")
        if len(state.diff) > MAX_DIFF_BYTES:
            state.diff = state.diff[:MAX_DIFF_BYTES]
            state.note = f"the diff is cut at {MAX_DIFF_BYTES // 1024} KiB"
    for name in filter(None, changed + untracked):
        state.files[name] = _text(Path(state.repository) / name)
    return state


def pathspec(folder: Path, exclude: list[Path]) -> list[str]:
    spec = ["--", "."]
    for path in exclude:
        try:
            relative = path.resolve().relative_to(folder)
        except ValueError:
            continue  # outside the folder: not in the diff anyway
        spec.append(f":(exclude){relative.as_posix()}")
    return spec


def _text(path: Path) -> str | None:
    if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def _data_file(folder: Path, field: str, path: str, spec: JobSpec) -> DataFile:
    import numpy as np

    stat = os.stat(path)
    hashes = row_hashes(spec, path)
    if hashes is not None:
        np.save(rows_file(folder, field), hashes)
    return DataFile(field=field, path=path, size=stat.st_size, mtime=stat.st_mtime,
                    rows=None if hashes is None else len(hashes), sha256=sha256(path))


def rows_file(folder: Path, field: str) -> Path:
    """Where a job folder keeps the row hashes of its `data.train` or `data.eval` file."""
    return folder / f"lineage-rows-{field.removeprefix('data.')}.npy"


def table(spec: JobSpec, path: str) -> Any:
    from .tasks.data import cached_read

    return cached_read(spec.task, path, spec.data)


def row_hashes(spec: JobSpec, path: str) -> Any:
    """A 64-bit hash of each row as the task reads the file; None where it cannot read it."""
    import pandas as pd

    try:
        frame = table(spec, path).to_pandas()
    except (DataError, OSError):
        return None
    for column in frame.columns:  # lists and dicts (tokens, answers) hash as their JSON
        if frame[column].dtype == object and not all(isinstance(v, str | None) for v in frame[column]):
            frame[column] = [json.dumps(v, sort_keys=True, default=str) for v in frame[column]]
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def environment(python: str) -> dict[str, str | None]:
    """Versions of the training libraries in `python`'s environment (this one's, or an attached script's)."""
    if python == sys.executable:
        return _versions()
    code = ("import importlib.metadata as m, json, platform, sys\n"
            f"def v(n):\n try: return m.version(n)\n except m.PackageNotFoundError: return None\n"
            f"print(json.dumps({{**{{n: v(n) for n in {PACKAGES!r}}}, 'python': platform.python_version()}}))")
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return json.loads(done.stdout) if done.returncode == 0 else {}


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return found


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
