"""Atomic checkpoints: a checkpoint folder exists under its final name only once it is complete.

The Trainer writes `checkpoint-N` file by file (model, optimizer, scheduler, RNG states, and
`trainer_state.json` last), so a worker killed meanwhile used to leave a partial newest checkpoint that
every later resume picked and failed on. Here the Trainer writes into `tmp-checkpoint-N` (a name that
neither `get_last_checkpoint` nor the Trainer's rotation matches), the reporter is flushed (`before_commit`:
no point logged before the checkpoint can be lost once it counts), and the folder is renamed to
`checkpoint-N`: one atomic step on one file system. Resume takes the newest checkpoint that holds a
readable `trainer_state.json`, so a partial folder left by an older version is skipped too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

PREFIX = "checkpoint"  # transformers' PREFIX_CHECKPOINT_DIR
STAGING_PREFIX = "tmp-"
STATE_FILE = "trainer_state.json"  # written last by Trainer._save_checkpoint
_NAME = re.compile(rf"^{PREFIX}-(\d+)$")


def is_complete(folder: Path) -> bool:
    try:
        json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def last_complete(folder: Path) -> Path | None:
    """The newest complete `checkpoint-N` in `folder`, or None."""
    if not folder.is_dir():
        return None
    found = sorted(((int(m.group(1)), path) for path in folder.iterdir()
                    if (m := _NAME.match(path.name)) and path.is_dir()), reverse=True)
    return next((path for _, path in found if is_complete(path)), None)


def atomic_trainer(base: type) -> type:
    """A subclass of `base` (a Trainer) whose checkpoints appear complete or not at all."""

    class AtomicCheckpointTrainer(base):  # type: ignore[misc]
        before_commit: Callable[[], None] | None = None
        _staging: str | None = None

        def _get_output_dir(self, trial: Any) -> str:
            # While a checkpoint is written, the run folder the Trainer saves into is the staging folder.
            return self._staging or super()._get_output_dir(trial)

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            from transformers.trainer_utils import rotate_checkpoints

            run_dir = Path(super()._get_output_dir(trial))
            name = f"{PREFIX}-{self.state.global_step}"
            staging_root = run_dir / f"{STAGING_PREFIX}{name}"
            staged, final = staging_root / name, run_dir / name
            if self.args.should_save:
                shutil.rmtree(staging_root, ignore_errors=True)  # left by a worker killed while saving
            self.accelerator.wait_for_everyone()
            self._staging = str(staging_root)
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self._staging = None
            self.accelerator.wait_for_everyone()  # every rank has written its part (RNG states)
            if self.args.should_save:
                if self.state.best_model_checkpoint == str(staged):
                    # The Trainer looked for the best checkpoint in the staging folder: name the final one.
                    self.state.best_model_checkpoint = str(final)
                    self.state.save_to_json(str(staged / STATE_FILE))
                if self.before_commit is not None:
                    self.before_commit()
                if final.exists():
                    shutil.rmtree(final)  # a partial one from a crash before this version, or a rerun step
                os.replace(staged, final)
                staging_root.rmdir()
                # The Trainer rotated inside the staging folder; rotate the real one.
                rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                                   best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
            self.accelerator.wait_for_everyone()

    AtomicCheckpointTrainer.__name__ = f"Atomic{base.__name__}"
    return AtomicCheckpointTrainer
