"""Reading a job's data files, checked, with errors that name the file, the field and the fix.

Every task goes through `load_data(spec)`: read the training file (and the eval file) with the task's
`read`, check its columns and rows, name its classes, then hold out `eval_fraction` and number the rows
(`fts_row`). `problems(spec)` runs the same checks at submit and returns them as `FieldProblem`s instead
of raising, so that the user gets a 422 naming the field; the worker raises the same `DataError`s if the
files changed in between. Reads are cached while a file is unchanged (same path, mtime and size).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import DataError, FieldProblem
from ..spec import DataSpec, JobSpec

_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
UTF8_HINT = "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"


@dataclass
class TaskData:
    """The checked splits, rows numbered; `names` are the classes of tasks that have them."""

    train: Any
    evaluation: Any | None
    names: list[str] | None


def builder_for(path: str, format: str = "auto") -> str:
    if format != "auto":
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in _BUILDERS:
        raise DataError(f"{path}: unknown file type {suffix!r}",
                        hint="use .csv, .tsv, .json, .jsonl or .parquet, or set data.format")
    return _BUILDERS[suffix]


def load_table(path: str, format: str = "auto") -> Any:
    """The whole file as a `datasets.Dataset` (one split), rows in file order."""
    import datasets

    builder = builder_for(path, format)
    kwargs: dict[str, Any] = {"delimiter": "\t"} if path.lower().endswith(".tsv") else {}
    if builder in ("csv", "json"):
        if _data_lines(path) <= (1 if builder == "csv" else 0):
            raise DataError(f"{path} has no rows", hint="give a file with at least one example")
    try:
        table = datasets.load_dataset(builder, data_files={"train": path}, split="train", **kwargs)
    except (ValueError, datasets.exceptions.DatasetGenerationError) as error:
        raise DataError(f"{path}: could not read it as {builder}: {_root_cause(error)}",
                        hint=f"check that the file is valid {builder}") from None
    if len(table) == 0:
        raise DataError(f"{path} has no rows", hint="give a file with at least one example")
    return table


def read_table(path: str, data: DataSpec) -> Any:
    """The `read` of tasks whose files are plain tables."""
    return load_table(path, data.format)


def read_text(path: str) -> str:
    """The file's text; a file that is not UTF-8 is an error naming the line and the byte."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(path, raw[:error.start].count(b"\n") + 1, error.start, error.reason) from None


def _not_utf8(path: str, line: int, offset: int, reason: str) -> DataError:
    return DataError(f"{path}, line {line}: not UTF-8 ({reason} at byte {offset} of the file)", hint=UTF8_HINT)


def _data_lines(path: str) -> int:
    """Non-blank lines, checking on the way that the file is UTF-8 (datasets' own error is obscure)."""
    count = 0
    offset = 0
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(path, line_number, offset + error.start, error.reason) from None
            count += bool(line.strip())
            offset += len(line)
    return count


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def cached_read(task: str, path: str, data: DataSpec) -> Any:
    """`read(path, data)` of the task named `task`, kept while the file is unchanged: the step-batch view
    reads rows of the same file again and again, and the server reads at submit what that view reads later."""
    stat = os.stat(path)
    return _cached_read(task, path, stat.st_mtime_ns, stat.st_size, data.model_dump_json())


def training_table(spec: JobSpec) -> Any:
    """The training file as the job's task reads it (cached), for `describe_rows`."""
    return cached_read(spec.task, spec.data.train, spec.data)


@lru_cache(maxsize=8)  # a few files' tables: the server holds them between requests
def _cached_read(task: str, path: str, mtime_ns: int, size: int, data_json: str) -> Any:
    from . import load_task

    return load_task(task).read(path, DataSpec.model_validate_json(data_json))


def require_columns(table: Any, path: str, **columns: str | None) -> None:
    """`columns` maps spec keys (text_column=...) to the column names they ask for."""
    existing = list(table.column_names)
    for key, name in columns.items():
        if name is not None and name not in existing:
            raise DataError(f"{path} has no column {name!r} (data.{key})",
                            hint=f"its columns are: {', '.join(existing)}; set data.{key} to one of them",
                            field=f"data.{key}")


def checked_table(name: str, path: str, data: DataSpec, field: str) -> Any:
    """The file read by the task named `name`, with its columns and rows checked; errors blame `field`
    (`data.train`), or the column key that names a missing column."""
    from . import load_task

    task = load_task(name)
    try:
        table = cached_read(name, path, data)
        require_columns(table, path, **task.columns(data))
        task.check_rows(table, path, data)
    except DataError as error:
        if error.field is None:
            raise DataError(error.message, error.hint, field) from None
        raise
    except OSError as error:
        raise DataError(f"{path}: {error.strerror}", hint="give the path of a readable data file",
                        field=field) from None
    return table


def unknown_eval_labels(names: list[str], eval_labels: set[str], path: str, what: str = "labels") -> None:
    unknown = sorted(eval_labels - set(names))
    if unknown:
        raise DataError(f"{path}: eval {what} {unknown[:10]} never occur in training",
                        hint=f"every eval {what.removesuffix('s')} must also appear in the training data",
                        field="data.eval")


def eval_problem(spec: JobSpec) -> DataError | None:
    """Evaluation asked for, with nothing to evaluate on (the Trainer would refuse it at its start)."""
    data = spec.data
    if spec.training.eval_strategy == "no" or data.eval is not None or data.eval_fraction is not None:
        return None
    return DataError(f"training.eval_strategy is {spec.training.eval_strategy!r} but there is no evaluation data",
                     hint="set data.eval to a file, or data.eval_fraction = 0.1 to hold out a tenth of the training "
                     "data, or training.eval_strategy = \"no\"", field="data.eval")


def holdout_problem(train: Any, eval_fraction: float | None) -> DataError | None:
    if eval_fraction is None or len(train) >= 2:
        return None
    return DataError("the training file has one row: nothing is left to hold out for data.eval_fraction",
                     hint="give more rows, or a separate data.eval file", field="data.eval_fraction")


def with_rows(table: Any) -> Any:
    """Number the rows of the file, before any split or shuffle."""
    return table.add_column("fts_row", list(range(len(table))))


def load_data(spec: JobSpec) -> TaskData:
    """The checked, split and numbered data of the job; raises the first DataError."""
    from . import load_task

    data = spec.data
    table = checked_table(spec.task, data.train, data, "data.train")
    evaluation = checked_table(spec.task, data.eval, data, "data.eval") if data.eval is not None else None
    names = load_task(spec.task).label_names(table, evaluation, data)
    problem = holdout_problem(table, data.eval_fraction)
    if problem is not None:
        raise problem
    if evaluation is not None:
        return TaskData(with_rows(table), with_rows(evaluation), names)
    if data.eval_fraction is None:
        return TaskData(with_rows(table), None, names)
    parts = with_rows(table).train_test_split(test_size=data.eval_fraction, seed=spec.training.seed)
    return TaskData(parts["train"], parts["test"], names)


def problems(spec: JobSpec) -> list[FieldProblem]:
    """What `load_data` would raise, as problems naming their field; each file is checked on its own."""
    from . import load_task

    data = spec.data
    found: list[DataError | None] = [eval_problem(spec)]
    tables: dict[str, Any] = {}
    for field, path in (("data.train", data.train), ("data.eval", data.eval)):
        if path is not None:
            try:
                tables[field] = checked_table(spec.task, path, data, field)
            except DataError as problem:
                found.append(problem)
    train = tables.get("data.train")
    if train is not None:
        try:
            load_task(spec.task).label_names(train, tables.get("data.eval"), data)
        except DataError as problem:
            found.append(problem)
        found.append(holdout_problem(train, data.eval_fraction))
    # a bad key (causal-lm's prompt without response) is found in both files: report it once
    return list(dict.fromkeys(problem.to_problem() for problem in found if problem is not None))
