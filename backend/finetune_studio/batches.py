"""Which training examples formed each optimizer step, so that a loss spike can be traced to its data.

The worker appends one record per micro-batch to `JOB_DIR/batches.bin`: little-endian int32
`[attempt, step, n, row_1..row_n, tokens_1..tokens_n]`, where rows are line numbers of the training file
and tokens the examples' lengths. Gradient accumulation gives several records per step; a resumed attempt
records again the steps after its checkpoint, and the reader keeps the latest attempt's records.

Recording costs a training step a list append: the rows and attention mask of PENDING micro-batches are
turned into records together (a torch op and a `tolist` per micro-batch cost 60-100 µs each between
training steps, whose work has evicted the caches; a few µs each in one run), then written to the
buffered file; `close` writes what is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import NotFound
from .spec import JobSpec
from .wire import BatchExample, StepBatch

FILE_NAME = "batches.bin"
_HEADER = 3
PENDING = 64  # micro-batches recorded together (the file is buffered: records were never written one by one)


class BatchRecorder:
    def __init__(self, job_dir: Path, attempt: int) -> None:
        self.attempt = attempt
        self._file: BinaryIO = open(job_dir / FILE_NAME, "ab")  # noqa: SIM115 - closed in close()
        self._pending: list[tuple[int, Any, Any, int]] = []

    def record(self, step: int, rows: Any, mask: Any, width: int) -> None:
        """One micro-batch: its rows (a 1-D tensor or list), its attention mask (2-D tensor; None: every
        example is `width` tokens long). The tensors are kept as given, unchanged: the Trainer moves
        inputs to the device as new tensors."""
        self._pending.append((step, rows, mask, width))
        if len(self._pending) >= PENDING:
            self.write()

    def write(self) -> None:
        """Turn the pending micro-batches into records, into the file's buffer."""
        records = []
        for step, rows, mask, width in self._pending:
            rows = rows.tolist() if hasattr(rows, "tolist") else list(rows)
            tokens = mask.sum(-1).tolist() if mask is not None else [width] * len(rows)
            records.append(np.array([self.attempt, step, len(rows), *rows, *tokens], dtype="<i4"))
        self._pending.clear()
        if records:
            self._file.write(np.concatenate(records).tobytes())

    def close(self) -> None:
        self.write()
        self._file.close()


def read_step(job_dir: Path, step: int) -> list[tuple[int, int]]:
    """(row, tokens) of the examples that formed `step`; empty when the step was not recorded."""
    path = job_dir / FILE_NAME
    if not path.is_file():
        return []
    data = np.fromfile(path, dtype="<i4")
    found: dict[int, list[tuple[int, int]]] = {}
    position = 0
    while position + _HEADER <= len(data):
        attempt, record_step, count = (int(v) for v in data[position:position + _HEADER])
        body = data[position + _HEADER:position + _HEADER + 2 * count]
        if len(body) < 2 * count:
            break  # a record cut short by a crash
        if record_step == step:
            pairs = zip(body[:count].tolist(), body[count:].tolist(), strict=True)
            found.setdefault(attempt, []).extend(pairs)
        position += _HEADER + 2 * count
    return found[max(found)] if found else []


def recording_trainer(base: type) -> type:
    """A subclass of `base` (Trainer or Seq2SeqTrainer) that takes the `fts_row` column out of every
    batch before the model sees it and, in training, records it with the examples' token counts."""

    class RecordingTrainer(base):  # type: ignore[misc]
        batch_recorder: BatchRecorder | None = None
        current_rows: list[int] | None = None  # the rows of the micro-batch being trained (anomaly.py reads it)

        def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
            rows = inputs.pop("fts_row", None)
            self.current_rows = rows.tolist() if rows is not None else None
            if self.current_rows is not None and self.batch_recorder is not None and self.is_world_process_zero():
                self.batch_recorder.record(self.state.global_step + 1, self.current_rows, inputs.get("attention_mask"),
                                           inputs["input_ids"].shape[-1])
            return super().training_step(model, inputs, num_items_in_batch)

        def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                            ignore_keys: list[str] | None = None) -> Any:
            inputs.pop("fts_row", None)
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    RecordingTrainer.__name__ = f"Recording{base.__name__}"
    return RecordingTrainer


def step_batch(job_dir: Path, spec: JobSpec, step: int) -> StepBatch:
    """The examples of one step with their text, label and token count, longest first."""
    from .tasks import load_task

    recorded = read_step(job_dir, step)
    if not recorded:
        raise NotFound(f"step {step} was not recorded for this job",
                       hint="steps are recorded from 1 to the job's current step")
    described = load_task(spec.task).describe_rows(spec, [row for row, _ in recorded])
    examples = [BatchExample(index=row, text=text, label=label, tokens=tokens)
                for (row, tokens), (text, label) in zip(recorded, described, strict=True)]
    examples.sort(key=lambda e: e.tokens, reverse=True)
    return StepBatch(step=step, examples=examples)
