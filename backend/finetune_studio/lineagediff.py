"""What changed between two runs (`diff`), and since a run (`worktree`), from what `lineage.py` recorded.

The diff has three parts: the spec, the code (a file's text in a run is the text recorded for it, or else
the text at that run's commit, read with `git show`), the data (which rows, from the hashes per row) and
the environment. The working-tree check, shown before "Clone as new job", compares a run's lineage with
the folder as it is now by the same rules: the commit, each file's text, and each data file (its size and
mtime first, as git and make do; its hash and rows only when those differ).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from .lineage import code_state, git, pathspec, row_hashes, rows_file, sha256, table
from .spec import JobSpec
from .wire import (
    CodeState,
    DataChange,
    DataFile,
    FileChange,
    Lineage,
    LineageDiff,
    RowChange,
    ValueChange,
    WorktreeCheck,
)

SHOWN_ROWS = 20  # changed rows whose content a data diff shows


def diff(a: Lineage, b: Lineage, folder_a: Path, folder_b: Path) -> LineageDiff:
    """What changed from run a to run b; `folder_*` are their job folders (the rows' hashes)."""
    code, note = _code_changes(a.code, b.code, _data_paths(a, b))
    return LineageDiff(a=a.job_id, b=b.job_id, spec=_value_changes(_flat(a), _flat(b)), code=code, code_note=note,
                       data=_data_changes(a, b, folder_a, folder_b),
                       environment=_value_changes(a.environment, b.environment))


def worktree(then: Lineage, folder: Path, state_dir: Path) -> WorktreeCheck:
    """Whether the working tree still holds what the run (job folder `folder`) came from."""
    check = WorktreeCheck(job_id=then.job_id, matches=None)
    check.data_changed = [change for data in then.data
                          if (change := _data_since(data, then.spec, folder)) is not None]
    code_matches: bool | None = None
    if then.code is None:
        check.note = "no code state was recorded for this run (its script was not found)"
    else:
        now = code_state(Path(then.code.folder), [state_dir, *_data_paths(then)])
        check.folder, check.repository = then.code.folder, then.code.repository
        check.commit_then, check.commit_now = then.code.commit, now.commit
        if then.code.repository is None:
            check.note = (f"{then.code.folder} was not a git repository when the run started "
                          f"({then.code.note or 'no git'}): its code cannot be compared")
        elif now.repository is None:
            check.note = f"{then.code.folder} is no longer a git repository ({now.note}): its code cannot be compared"
        elif now.repository != then.code.repository:
            check.note = (f"{then.code.folder} is now in another repository ({now.repository}): its code cannot "
                          "be compared")
        else:
            check.changed_files, check.note = _code_changes(then.code, now, _data_paths(then))
            if check.note is None:
                code_matches = not check.changed_files and then.code.commit == now.commit
                if not check.changed_files and not code_matches:
                    check.note = "the files are the run's, at another commit"
    if check.data_changed or code_matches is False:
        check.matches = False
    elif code_matches:
        check.matches = True
    return check


def _data_paths(*lineages: Lineage) -> list[Path]:
    """The data files: they have their own part, so the code's excludes them."""
    return [Path(data.path) for lineage in lineages for data in lineage.data]


def _data_since(then: DataFile, spec: JobSpec | None, folder: Path) -> DataChange | None:
    """How a data file differs from what the run read; None: the same content."""
    path = Path(then.path)
    if not path.is_file():
        return DataChange(field=then.field, a=then, b=None, note=f"{then.path} is gone")
    stat = path.stat()
    if stat.st_size == then.size and stat.st_mtime == then.mtime:
        return None
    digest = sha256(then.path)
    if digest == then.sha256:
        return None  # touched, not changed
    hashes = row_hashes(spec, then.path) if spec is not None else None
    now = DataFile(field=then.field, path=then.path, size=stat.st_size, mtime=stat.st_mtime,
                   rows=None if hashes is None else len(hashes), sha256=digest)
    change = DataChange(field=then.field, a=then, b=now)
    _row_changes(change, _hashes(folder, then.field), hashes, spec, spec)
    return change


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


def _code_changes(a: CodeState | None, b: CodeState | None,
                  exclude: list[Path]) -> tuple[list[FileChange], str | None]:
    if a is None or b is None or a.repository is None or b.repository is None:
        return [], "no git repository recorded for " + ("either run" if a is b is None else "one of the runs")
    if a.repository != b.repository:
        return [], f"the runs come from different repositories ({a.repository}, {b.repository})"
    top = Path(a.repository)
    names = set(a.files) | set(b.files)
    if a.commit and b.commit and a.commit != b.commit:
        between = git(Path(b.folder), "diff", "--name-only", a.commit, b.commit, *pathspec(Path(b.folder), exclude))
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
    return git(Path(state.repository or state.folder), "show", f"{state.commit}:{name}")


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

    path = rows_file(folder, field)
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
    unchanged = spec is not None and Path(data.path).is_file() and sha256(data.path) == data.sha256
    rows = table(spec, data.path) if unchanged and spec is not None else None

    def row(index: int) -> str | None:
        if rows is None or index >= len(rows):
            return None
        return json.dumps(rows[index], ensure_ascii=False, default=str)

    return row
