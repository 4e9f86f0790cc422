"""Reading training files into `datasets`, with errors that name the file, the column and the fix."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import DataError

_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


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


@lru_cache(maxsize=4)
def cached_table(path: str, format: str = "auto") -> Any:
    """`load_table`, kept for the step-batch view, which reads rows of the same file again and again."""
    return load_table(path, format)


def _data_lines(path: str) -> int:
    """Non-blank lines, checking on the way that the file is UTF-8 (datasets' own error is obscure)."""
    count = 0
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}, line {line_number}: not UTF-8 ({error.reason} at byte {error.start})",
                                hint="re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
            count += bool(line.strip())
    return count


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def require_columns(table: Any, path: str, **columns: str | None) -> None:
    """`columns` maps spec keys (text_column=...) to the column names they ask for."""
    existing = list(table.column_names)
    for key, name in columns.items():
        if name is not None and name not in existing:
            raise DataError(f"{path} has no column {name!r} (data.{key})",
                            hint=f"its columns are: {', '.join(existing)}; set data.{key} to one of them")


def with_rows(table: Any) -> Any:
    """Number the rows of the training file, before any split or shuffle."""
    return table.add_column("fts_row", list(range(len(table))))


def split_train_eval(train: Any, eval_path: str | None, eval_fraction: float | None, seed: int,
                     format: str = "auto") -> tuple[Any, Any | None]:
    if eval_path is not None:
        return train, load_table(eval_path, format)
    if eval_fraction is None:
        return train, None
    if len(train) < 2:
        raise DataError("the training file has one row: nothing is left to hold out for data.eval_fraction",
                        hint="give more rows, or a separate data.eval file")
    parts = train.train_test_split(test_size=eval_fraction, seed=seed)
    return parts["train"], parts["test"]


def numbered_splits(train_path: str, eval_path: str | None, eval_fraction: float | None, seed: int,
                    read: Callable[[str], Any], check: Callable[[Any, str], None]) -> tuple[Any, Any, Any | None]:
    """The training table as read, and the (train, eval) splits with their rows numbered; each file is
    read with `read` and checked with `check` (which names the file in its errors)."""
    table = read(train_path)
    check(table, train_path)
    if eval_path is None:
        train, evaluation = split_train_eval(with_rows(table), None, eval_fraction, seed)
        return table, train, evaluation
    evaluation = read(eval_path)
    check(evaluation, eval_path)
    return table, with_rows(table), with_rows(evaluation)
