"""What a run came from, recorded when it starts, and what changed between two runs.

At submit (`record_job`) and when an attached run opens (`record_run`) the job folder gets `lineage.json`:
the spec (or the script's TrainingArguments), the git state of the project folder (or the script's
folder): commit, branch, the uncommitted diff and the text of each changed or new file, the data files
(size, mtime, rows, SHA-256; a hash per row in `lineage-rows-<field>.npy`), and the versions of the
libraries that train. Git runs locally through its CLI; nothing leaves the machine.

`diff(a, b)` compares two lineages in three parts: spec, code (a file's text in a run is the text
recorded for it, or else the text at that run's commit, read with `git show`), data and environment.
"""

from __future__ import annotations

import difflib
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

from pydantic import BaseModel, Field

from .errors import DataError, NotFound
from .spec import JobSpec
from .wire import RunCreate

FILE = "lineage.json"
PACKAGES = ("torch", "transformers", "peft", "datasets", "accelerate", "finetune-studio")
MAX_FILE_BYTES = 256 * 1024  # a changed file's text is kept up to this size
MAX_DIFF_BYTES = 1024 * 1024
SHOWN_ROWS = 20  # changed rows whose content a data diff shows
GIT_TIMEOUT_S = 20


# -- wire (to move into wire.py with the plugin's twins) ----------------------------------------------
class CodeState(BaseModel):
    folder: str
    repository: str | None = Field(None, description="the git work tree's top folder; null: not a repository")
    commit: str | None = None
    branch: str | None = None
    diff: str = Field("", description="uncommitted changes of tracked files under the folder (unified diff)")
    files: dict[str, str | None] = Field(
        default_factory=dict, description="each changed or untracked file (path in the repository) -> its "
        "text; null: deleted, binary or too large")
    note: str | None = None


class DataFile(BaseModel):
    field: str = Field(description="data.train or data.eval")
    path: str
    size: int
    mtime: float
    rows: int | None
    sha256: str


class Lineage(BaseModel):
    """`GET /api/jobs/{id}/lineage`."""

    job_id: str
    recorded_at: float
    spec: JobSpec | None = None
    training_args: dict[str, str | int | float | bool | None] | None = None
    script: str | None = Field(None, description="an attached run's script")
    code: CodeState | None = None
    data: list[DataFile] = Field(default_factory=list)
    environment: dict[str, str | None] = Field(default_factory=dict)


class ValueChange(BaseModel):
    key: str
    a: Any = None
    b: Any = None


class FileChange(BaseModel):
    path: str
    diff: str


class RowChange(BaseModel):
    row: int = Field(description="1-based row of b's file (a's for a removed row)")
    a: str | None = Field(None, description="the row in a's file, when that file is still on disk")
    b: str | None = None


class DataChange(BaseModel):
    field: str
    a: DataFile | None
    b: DataFile | None
    changed_rows: list[int] = Field(default_factory=list)
    added_rows: int = 0
    removed_rows: int = 0
    rows: list[RowChange] = Field(default_factory=list)
    note: str | None = None


class LineageDiff(BaseModel):
    """`GET /api/jobs/{a}/lineage/diff/{b}`: what changed from run a to run b."""

    a: str
    b: str
    spec: list[ValueChange]
    code: list[FileChange]
    code_note: str | None = None
    data: list[DataChange]
    environment: list[ValueChange]


# -- recording ----------------------------------------------------------------------------------------
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


def _git(folder: Path, *args: str) -> str | None:
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
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top is None:
        state.note = "not a git repository" if _git(Path.cwd(), "--version") else "git is not installed"
        return state
    state.repository = top.strip()
    state.commit = (_git(folder, "rev-parse", "--verify", "HEAD") or "").strip() or None
    state.branch = (_git(folder, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None
    paths = _pathspec(folder, exclude)
    untracked = (_git(folder, "ls-files", "--others", "--exclude-standard", "--full-name", *paths) or "").split("\n")
    changed = []
    if state.commit:
        state.diff = _git(folder, "diff", "HEAD", "--no-color", "--no-ext-diff", *paths) or ""
        changed = (_git(folder, "diff", "HEAD", "--name-only", *paths) or "").split("\n")
        if len(state.diff) > MAX_DIFF_BYTES:
            state.diff = state.diff[:MAX_DIFF_BYTES]
            state.note = f"the diff is cut at {MAX_DIFF_BYTES // 1024} KiB"
    for name in filter(None, changed + untracked):
        state.files[name] = _text(Path(state.repository) / name)
    return state


def _pathspec(folder: Path, exclude: list[Path]) -> list[str]:
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
    hashes = _row_hashes(spec, path)
    if hashes is not None:
        np.save(folder / f"lineage-rows-{field.removeprefix('data.')}.npy", hashes)
    return DataFile(field=field, path=path, size=stat.st_size, mtime=stat.st_mtime,
                    rows=None if hashes is None else len(hashes), sha256=_sha256(path))


def _table(spec: JobSpec, path: str) -> Any:
    from .tasks.data import cached_read

    return cached_read(spec.task, path, spec.data)


def _row_hashes(spec: JobSpec, path: str) -> Any:
    """A 64-bit hash of each row as the task reads the file; None where it cannot read it."""
    import pandas as pd

    try:
        frame = _table(spec, path).to_pandas()
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


# -- comparing ----------------------------------------------------------------------------------------
def diff(a: Lineage, b: Lineage, folder_a: Path, folder_b: Path) -> LineageDiff:
    code, note = _code_changes(a.code, b.code)
    return LineageDiff(a=a.job_id, b=b.job_id, spec=_value_changes(_flat(a), _flat(b)), code=code, code_note=note,
                       data=_data_changes(a, b, folder_a, folder_b),
                       environment=_value_changes(a.environment, b.environment))


def _flat(lineage: Lineage) -> dict[str, Any]:
    if lineage.spec is not None:
        return _flatten(lineage.spec.model_dump(mode="json"))
    return dict(lineage.training_args or {})


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            flat.update(_flatten(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _value_changes(a: dict[str, Any], b: dict[str, Any]) -> list[ValueChange]:
    return [ValueChange(key=k, a=a.get(k), b=b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def _code_changes(a: CodeState | None, b: CodeState | None) -> tuple[list[FileChange], str | None]:
    if a is None or b is None or a.repository is None or b.repository is None:
        return [], "no git repository recorded for " + ("either run" if a is b is None else "one of the runs")
    if a.repository != b.repository:
        return [], f"the runs come from different repositories ({a.repository}, {b.repository})"
    top = Path(a.repository)
    names = set(a.files) | set(b.files)
    if a.commit and b.commit and a.commit != b.commit:
        between = _git(top, "diff", "--name-only", a.commit, b.commit, "--", os.path.relpath(b.folder, top))
        if between is None:
            return [], f"commit {a.commit[:10]} or {b.commit[:10]} is no longer in {top}"
        names |= set(filter(None, between.split("\n")))
    changes = []
    for name in sorted(names):
        before, after = _file_at(a, name), _file_at(b, name)
        if before != after:
            lines = difflib.unified_diff((before or "").splitlines(keepends=True),
                                         (after or "").splitlines(keepends=True), f"a/{name}", f"b/{name}")
            changes.append(FileChange(path=name, diff="".join(lines)))
    return changes, None


def _file_at(state: CodeState, name: str) -> str | None:
    """The file's text in that run: recorded when it differed from the commit, else the commit's."""
    if name in state.files:
        return state.files[name]
    if state.commit is None:
        return None
    return _git(Path(state.repository or state.folder), "show", f"{state.commit}:{name}")


def _data_changes(a: Lineage, b: Lineage, folder_a: Path, folder_b: Path) -> list[DataChange]:
    before = {d.field: d for d in a.data}
    after = {d.field: d for d in b.data}
    changes = []
    for field in sorted(before.keys() | after.keys()):
        old, new = before.get(field), after.get(field)
        if old is not None and new is not None and old.sha256 == new.sha256:
            continue
        change = DataChange(field=field, a=old, b=new)
        if old is not None and new is not None:
            _row_changes(change, _hashes(folder_a, field), _hashes(folder_b, field), a.spec, b.spec)
        changes.append(change)
    return changes


def _hashes(folder: Path, field: str) -> Any:
    import numpy as np

    path = folder / f"lineage-rows-{field.removeprefix('data.')}.npy"
    return np.load(path) if path.is_file() else None


def _row_changes(change: DataChange, old: Any, new: Any, spec_a: JobSpec | None, spec_b: JobSpec | None) -> None:
    if old is None or new is None:
        change.note = "the rows of one run were not recorded: only the file hashes differ"
        return
    matcher = difflib.SequenceMatcher(None, old.tolist(), new.tolist(), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace",):
            common = min(i2 - i1, j2 - j1)
            change.changed_rows += [j1 + k + 1 for k in range(common)]
            change.added_rows += (j2 - j1) - common
            change.removed_rows += (i2 - i1) - common
        elif tag == "insert":
            change.added_rows += j2 - j1
        elif tag == "delete":
            change.removed_rows += i2 - i1
    assert change.a is not None and change.b is not None
    rows_a = _rows_on_disk(change.a, spec_a)
    rows_b = _rows_on_disk(change.b, spec_b)
    for row in change.changed_rows[:SHOWN_ROWS]:
        position = _old_position(matcher, row - 1)
        change.rows.append(RowChange(row=row, a=rows_a(position) if position is not None else None, b=rows_b(row - 1)))


def _old_position(matcher: difflib.SequenceMatcher[Any], new_index: int) -> int | None:
    for tag, i1, _, j1, j2 in matcher.get_opcodes():
        if j1 <= new_index < j2 and tag in ("replace", "equal"):
            return i1 + (new_index - j1)
    return None


def _rows_on_disk(data: DataFile, spec: JobSpec | None) -> Any:
    """A row's content from the file on disk, when the file is still what the run read (same hash)."""
    unchanged = spec is not None and Path(data.path).is_file() and _sha256(data.path) == data.sha256
    table = _table(spec, data.path) if unchanged and spec is not None else None

    def row(index: int) -> str | None:
        if table is None or index >= len(table):
            return None
        return json.dumps(table[index], ensure_ascii=False, default=str)

    return row


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
