"""`python -m finetune_studio.worker JOB_DIR`: one attempt of one job, top to bottom.

load the spec -> build the task -> attach the reporter -> train (resuming from the last checkpoint on a
later attempt) -> save the model -> write `result.json`. SIGTERM asks for a graceful stop: the current
step finishes, a checkpoint is saved, and the result says `cancelled`. Every failure ends in a result
with `error {type, message, hint}`; the traceback goes to stderr, which the server keeps in the log.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from .checkpoints import atomic_trainer, last_complete
from .errors import StudioError
from .spec import JobSpec
from .store import read_job


class GracefulStop:
    """Turns SIGTERM into a request that the Trainer honours at the end of the current step."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True


def precision_args(precision: str) -> dict[str, bool]:
    import torch

    if precision == "auto":
        if not torch.cuda.is_available():
            return {}
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def training_arguments(spec: JobSpec, job_dir: Path, task_args: dict[str, Any]) -> Any:
    import torch
    from transformers import Seq2SeqTrainingArguments

    t = spec.training
    # transformers 5 reads a warmup_steps below 1 as a share of all steps (the old warmup_ratio).
    warmup: float = (t.warmup_steps if t.warmup_steps is not None
                     else 0.06 if t.warmup_ratio is None else t.warmup_ratio)
    args: dict[str, Any] = dict(
        output_dir=str(job_dir / "checkpoints"), num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, learning_rate=t.learning_rate,
        weight_decay=t.weight_decay, lr_scheduler_type=t.lr_scheduler_type, seed=t.seed,
        logging_steps=t.logging_steps, logging_first_step=True, eval_strategy=t.eval_strategy,
        eval_steps=t.eval_steps, save_strategy=t.save_strategy, save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        report_to="none", disable_tqdm=True, logging_nan_inf_filter=False, remove_unused_columns=False,
        dataloader_num_workers=0,
        # Pinned memory speeds up copies to a CUDA device only; without one PyTorch warns at every epoch.
        dataloader_pin_memory=torch.cuda.is_available(),
        warmup_steps=warmup, **precision_args(t.precision))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        args["use_cpu"] = True  # DDP on CPU processes (gloo): without it the Trainer trains each rank alone
    if t.gradient_checkpointing:
        # transformers 5 renamed gradient_checkpointing (a deprecated alias now). Passed only when asked for:
        # a set activation_checkpointing would silently override a `gradient_checkpointing` in training.args.
        renamed = "activation_checkpointing" in Seq2SeqTrainingArguments.__dataclass_fields__
        args["activation_checkpointing" if renamed else "gradient_checkpointing"] = True
    args.update(task_args)
    args.update(t.args)
    # Seq2SeqTrainingArguments is TrainingArguments plus generation options: one class serves all tasks.
    return Seq2SeqTrainingArguments(**args)


def last_checkpoint(job_dir: Path) -> str | None:
    """The newest complete checkpoint: a partial one (a worker killed while saving) is passed over."""
    found = last_complete(job_dir / "checkpoints")
    return str(found) if found else None


def error_of(exc: BaseException) -> dict[str, Any]:
    import torch

    if isinstance(exc, StudioError):
        return exc.to_dict()
    if isinstance(exc, torch.OutOfMemoryError):
        return {"type": "out_of_memory", "message": f"the GPU ran out of memory: {str(exc).splitlines()[0]}",
                "hint": "lower training.batch_size (and raise training.gradient_accumulation_steps to keep "
                        "the effective batch), lower data.max_length, or set training.gradient_checkpointing"}
    return {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__,
            "hint": "the job's log holds the full traceback"}


def agreed(flags: list[bool], args: Any) -> list[bool]:
    """Each flag set on any rank, set on all: under DDP every rank must save and stop at the same steps
    (one that saved or stopped alone would leave the others waiting in a collective). One tiny all-reduce."""
    if args.world_size == 1:
        return flags
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([int(f) for f in flags], device=args.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(f) for f in tensor.tolist()]


class SilentClient:
    """The reporter client of ranks other than 0: only rank 0 reports (its events are numbered in one
    sequence, and its spool is the job's; another rank's events would collide with them)."""

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        if type_ == "anomaly":  # found in this rank's own batch: the job's log says so, prefixed by the rank
            print(f"anomaly ({data.get('kind')}) at step {data.get('step')}: {data.get('detail')}; rows "
                  f"{data.get('rows')}; batch saved to {data.get('saved_to')}", file=sys.stderr, flush=True)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def job_spec(job_dir: Path) -> JobSpec:
    """The job's spec, from the state folder's database (its one home); the job folder is named by id."""
    job = read_job(job_dir.parent.parent / "studio.db", job_dir.name)
    assert job.spec is not None, "attached runs have no worker"
    return job.spec


def run(job_dir: Path) -> dict[str, Any]:
    """One attempt of the managed job whose folder is `job_dir`, reporting to the server that launched it."""
    from .delivery import ReporterClient

    spec = job_spec(job_dir)
    attempt = int(os.environ.get("FINETUNE_STUDIO_ATTEMPT", "1"))
    stop = GracefulStop()
    home = os.environ.get("FINETUNE_STUDIO_HOME")
    client: ReporterClient | SilentClient = SilentClient()  # a rank other than 0 under torchrun
    if int(os.environ.get("RANK", "0")) == 0:
        client = ReporterClient(os.environ.get("FINETUNE_STUDIO_URL"), os.environ.get("FINETUNE_STUDIO_TOKEN"),
                                os.environ.get("FINETUNE_STUDIO_JOB"), attempt, job_dir / "spool.jsonl",
                                state_dir=Path(home) if home else None)
    try:
        return train_job(spec, job_dir, client, attempt, stop)
    finally:
        client.close()


def train_job(spec: JobSpec, job_dir: Path, client: Any, attempt: int, stop: GracefulStop,
              resume_from: str | None = None, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train `spec` in this process, reporting through `client`: the managed worker's body, and what
    `finetune-studio train` runs in the user's own process (under a debugger, say)."""
    import torch
    from transformers import Trainer, TrainerCallback
    from transformers.utils import logging as transformers_logging

    from . import lora
    from .anomaly import AnomalySettings, AnomalyWatch, watching_trainer
    from .batches import BatchRecorder, recording_trainer
    from .reporter import StudioCallback
    from .tasks import load_task

    transformers_logging.disable_progress_bar()
    recorder = BatchRecorder(job_dir, attempt)
    watch = AnomalyWatch(AnomalySettings(
        break_on=frozenset(spec.debug.break_on), on_anomaly=spec.debug.on_anomaly, spike_z=spec.debug.spike_z,
        grad_z=spec.debug.grad_z, window=spec.debug.window, warmup=min(20, spec.debug.window)),
        job_dir, client.emit, client.flush)
    try:
        print(f"attempt {attempt}: preparing {spec.task} with {spec.model}", flush=True)
        prepared = load_task(spec.task).prepare(spec)
        if spec.lora is not None:
            prepared.model = lora.wrap(spec, prepared.model)
        if stop.requested:
            return {"state": "cancelled"}
        # With the `nan` detector on, a non-finite step is the anomaly watch's to handle, not a failure.
        callback = StudioCallback(client, eval_details=prepared.eval_details,
                                  stop_on_nan="nan" not in spec.debug.break_on)

        class HonourStop(TrainerCallback):
            """Last of the step's callbacks: a stop request, or a save or stop that one rank decided (an
            anomaly in its own batch), holds for every rank."""

            anomaly_stop = False  # `on_anomaly = "stop"` fired on some rank (maybe not this one)

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                stopping, control.should_save, control.should_training_stop, anomaly = agreed(
                    [stop.requested, control.should_save, control.should_training_stop,
                     watch.stop_requested is not None], args)
                HonourStop.anomaly_stop = HonourStop.anomaly_stop or anomaly
                if stopping:
                    stop.requested = True  # a rank not signalled itself ends as the others do
                    control.should_save = True  # the checkpoint that Resume continues from
                    control.should_training_stop = True

        trainer_class = watching_trainer(recording_trainer(atomic_trainer(prepared.trainer_class or Trainer)))
        trainer = trainer_class(
            model=prepared.model, args=training_arguments(spec, job_dir, prepared.training_args),
            train_dataset=prepared.train_dataset, eval_dataset=prepared.eval_dataset,
            data_collator=prepared.data_collator, processing_class=prepared.tokenizer,
            compute_metrics=prepared.compute_metrics, callbacks=[callback, HonourStop(), *(callbacks or [])],
            preprocess_logits_for_metrics=prepared.preprocess_logits_for_metrics)
        trainer.batch_recorder = recorder
        trainer.anomaly_watch = watch
        trainer.before_commit = client.flush  # a checkpoint counts only once the points before it are safe
        # `resume_from`: a checkpoint the caller restored (a Ray worker restarted after a failure).
        resume_from = resume_from or (last_checkpoint(job_dir) if attempt > 1 else None)
        if resume_from:
            print(f"resuming from {resume_from}", flush=True)
        trainer.train(resume_from_checkpoint=resume_from)
        if watch.stop_requested is not None:
            anomaly = watch.stop_requested
            return {"state": "failed", "error": {
                "type": "anomaly", "message": anomaly.message(),
                "hint": f"the batch is saved in {anomaly.saved_to}; the loss chart's marker opens it. Run it under "
                        "a debugger (Debug Fine-tune, or `finetune-studio train`) to stop at that step"}}
        if HonourStop.anomaly_stop:  # another rank's batch: its anomaly is in the job's log, with its rank
            return {"state": "failed", "error": {
                "type": "anomaly", "message": "an anomaly in another process's batch stopped the run "
                                              "(on_anomaly = \"stop\")",
                "hint": "the job's log names it, with the step, the rows and where that rank saved the batch"}}
        if callback.nan_step is not None:
            return {"state": "failed", "error": {
                "type": "nan_loss",
                "message": f"the training loss or gradient became NaN or infinite at step {callback.nan_step}",
                "hint": "lower training.learning_rate, use precision = \"bf16\" or \"fp32\" instead of fp16, "
                        "look at that step's batch in the dashboard for broken examples, or set "
                        "[debug] break_on = [\"nan\"] to catch it at the step it happens"}}
        if stop.requested:
            return {"state": "cancelled"}
        output = job_dir / "model"
        trainer.save_model(str(output))  # every rank calls it (a collective under FSDP); rank 0 writes
        if trainer.is_world_process_zero():  # the other ranks would write the same files at the same time
            prepared.tokenizer.save_pretrained(str(output))
            print(f"saved the {'adapter' if spec.lora else 'model'} to {output}", flush=True)
            if spec.lora is not None and spec.lora.merge:
                lora.save_merged(trainer.model, prepared.tokenizer, job_dir / "model-merged")
        return {"state": "completed", "output_dir": str(output)}
    except (StudioError, torch.OutOfMemoryError) as exc:
        return {"state": "failed", "error": error_of(exc)}
    except Exception as exc:  # reported as the job's error, with the traceback in its log
        traceback.print_exc()
        return {"state": "failed", "error": error_of(exc)}
    finally:
        recorder.close()


def finish(job_dir: Path, result: dict[str, Any]) -> int:
    """Write the attempt's `result.json` (rank 0 only), say its error on stderr, and give the exit code."""
    if int(os.environ.get("RANK", "0")) == 0:
        (job_dir / "result.json").write_text(json.dumps(result), encoding="utf-8")
    if result.get("error"):
        print(f"{result['error']['type']}: {result['error']['message']}", file=sys.stderr, flush=True)
    return 0 if result["state"] in ("completed", "cancelled") else 1


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown, once the result is written and every event
    sent: collecting the modules of torch and transformers took 2-6 s of every job's end (measured on a
    busy 2-core machine), each rank's under torchrun. The atexit hooks still run."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> int:
    job_dir = Path(sys.argv[1]).resolve()
    return finish(job_dir, run(job_dir))


if __name__ == "__main__":
    exit_now(main())
