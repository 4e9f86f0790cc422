"""Reporting a training run to the server: `StudioCallback`, a TrainerCallback that turns the Trainer's
logs, progress and evaluations into events for a `delivery.ReporterClient` (which numbers, sends and
spools them). `on_save` flushes the client, so a crash after a checkpoint loses no point before it.

In a user's own script, `StudioCallback()` opens an *attached* run on the server found by the rule of
`discovery.py` (without one it warns once and keeps spooling: it never stops the user's training), and
ends it: completed at the end of training, failed with the exception when the script raises, failed
when it exits before the end.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from transformers import TrainerCallback

from .delivery import ReporterClient
from .discovery import NoServer, find_server
from .system_metrics import SystemSampler

log = logging.getLogger(__name__)



# The task a model class trains for, by the suffix transformers gives its heads.
_TASK_OF_HEAD = {"ForSequenceClassification": "text-classification", "ForTokenClassification": "token-classification",
                 "ForQuestionAnswering": "question-answering", "ForCausalLM": "causal-lm",
                 "ForConditionalGeneration": "seq2seq", "ForSeq2SeqLM": "seq2seq", "EncoderDecoderModel": "seq2seq"}


def _is_number(value: Any) -> bool:
    """What a metric point can hold: a number (NaN included: it travels as null)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def task_of(model: Any) -> str:
    """An attached run's task, from its model's class (a peft wrapper is looked through); else "custom"."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = type(base).__name__ if base is not None else ""
    return next((task for suffix, task in _TASK_OF_HEAD.items() if name.endswith(suffix)), "custom")


def run_name(args: Any) -> str:
    """An attached run's name: the TrainingArguments' run_name when the user set one, else the script's."""
    given = getattr(args, "run_name", None)
    if given and given != args.output_dir:
        return str(given)
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c") else ""
    return script or Path(args.output_dir or "run").name


PROGRESS_SECONDS = 0.2  # progress (only the last one shows) at most this often, and at the end of training
ERROR_FRAMES = 5  # of an attached script's uncaught exception, in the run's error message
_SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}
_EVAL_NOISE = {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}


class StudioCallback(TrainerCallback):
    """Reports metrics, progress and evaluations of a `Trainer` to Fine-Tune Studio.

    In a managed job the worker hands it a client; in a user's script, `StudioCallback()` opens an
    attached run on the first `on_train_begin`."""

    def __init__(self, client: ReporterClient | None = None, name: str | None = None,
                 eval_details: Any = None, stop_on_nan: bool = False, break_on: list[str] | None = None,
                 on_anomaly: str = "continue") -> None:
        """`break_on` (any of "nan", "spike", "grad_spike") turns on the anomaly detectors of `anomaly.py`
        for this script's Trainer: under a debugger it stops at the anomaly, else it saves the batch to
        `<output_dir>/anomalies/` and goes on (or stops, with `on_anomaly="stop"`)."""
        self.client = client
        self.name = name
        self.eval_details = eval_details
        self.stop_on_nan = stop_on_nan
        self.break_on = list(break_on or [])
        self.on_anomaly = on_anomaly
        self._hooked: Any = None  # anomaly.HookedWatch, once training begins
        self.nan_step: int | None = None
        self._attached = client is None
        self._ended = False
        self._started_at = 0.0
        self._start_step = 0
        self._sampler: SystemSampler | None = None
        self._progress_at = -math.inf  # time.monotonic() of the last progress event
        self._cuda: Any = None  # torch.cuda on a GPU machine: on_log reports its memory

    # -- attached runs ---------------------------------------------------------------------------
    def _open_run(self, args: Any, model: Any = None) -> ReporterClient:
        spool = Path(args.output_dir or ".") / "finetune-studio-spool.jsonl"
        job_id = None
        url: str | None = None
        token: str | None = None
        state_dir: Path | None = None
        try:
            server = find_server()
        except NoServer as error:
            log.warning("%s; spooling to %s", error, spool)
        else:
            url, token = server.url, server.token
            home = os.environ.get("FINETUNE_STUDIO_HOME")
            # Where to look again after a failed send: a restarted server has another port and token.
            state_dir = Path(server.source).parent if server.source != "environment" else Path(home) if home else None
            config = {k: v for k, v in args.to_dict().items() if isinstance(v, str | int | float | bool)}
            try:
                response = httpx.post(f"{url}/api/runs", json={
                    "name": self.name or run_name(args), "task": task_of(model),
                    "output_dir": str(Path(args.output_dir or ".").resolve()), "training_args": config,
                    "pid": os.getpid(), "device": str(args.device)},
                    headers={"Authorization": f"Bearer {token}"}, timeout=10, trust_env=False)
                response.raise_for_status()
                job_id = response.json()["id"]
                # Its own spool: another run's (an earlier script without a server) is never replayed into it.
                spool = spool.with_name(f"finetune-studio-spool-{job_id}.jsonl")
            except httpx.HTTPError as error:
                log.warning("Fine-Tune Studio: could not open a run (%s); spooling to %s", error, spool)
        return ReporterClient(url, token, job_id, 1, spool, state_dir=state_dir)

    def _watch_exit(self) -> None:
        """An attached run ends even when its script never reaches on_train_end: an uncaught exception
        becomes the run's error (type, message, last frames; the traceback goes to the run's log), and any
        other exit before the end of training fails the run. A script killed outright is the server's
        watchdog's to end (its pid, and the reporter's heartbeats)."""
        previous = sys.excepthook

        def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
            try:
                self._end_with_exception(value, tb)
            finally:
                previous(kind, value, tb)

        sys.excepthook = hook
        atexit.register(self._end, "failed", {
            "type": "exited", "message": "the script exited before its training ended",
            "hint": "the script's own output says why (an exception it caught, or sys.exit)"})

    def _end_with_exception(self, exc: BaseException, tb: TracebackType | None) -> None:
        if self._ended or self.client is None:
            return
        for line in "".join(traceback.format_exception(type(exc), exc, tb)).splitlines():
            self.client.emit("log", {"stream": "stderr", "text": line})
        frames = "".join(traceback.format_list(traceback.extract_tb(tb)[-ERROR_FRAMES:])).rstrip()
        if isinstance(exc, KeyboardInterrupt):
            self._end("cancelled", None)
            return
        self._end("failed", {"type": type(exc).__name__,
                             "message": f"{exc or type(exc).__name__}\nlast frames:\n{frames}",
                             "hint": "the script raised this; the run's log holds the whole traceback"})

    def _end(self, state: str, error: dict[str, Any] | None) -> None:
        """Report the run's end once, and send (or spool) everything before returning."""
        if self._ended or self.client is None:
            return
        self._ended = True
        self.client.emit("end", {"state": state, **({"error": error} if error else {})})
        self.client.close()

    # -- TrainerCallback -------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.client is None and state.is_world_process_zero:
            self.client = self._open_run(args, kwargs.get("model"))
            self._watch_exit()
        if self.break_on and self.client is not None and kwargs.get("model") is not None:
            from .anomaly import AnomalySettings, AnomalyWatch, HookedWatch

            watch = AnomalyWatch(AnomalySettings(break_on=frozenset(self.break_on), on_anomaly=self.on_anomaly),
                                 Path(args.output_dir or "."), self.client.emit, self.client.flush)
            self._hooked = HookedWatch(watch)
            self._hooked.attach(kwargs["model"])
        self._started_at = time.time()
        self._start_step = state.global_step
        import torch

        self._cuda = torch.cuda if torch.cuda.is_available() else None
        # A managed job's ranks each have this callback, so all of them sample and gather (a collective);
        # a user's script may have it on rank 0 alone, which then reports its own process only.
        gather = not self._attached and args.world_size > 1
        if gather or (self.client is not None and state.is_world_process_zero):
            self._sampler = SystemSampler(state.global_step, gather)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               **kwargs: Any) -> None:
        if not logs:
            return
        # A NaN gradient norm poisons the weights as surely as a NaN loss does. Every rank checks: the logged
        # loss and norm are the same on all (gathered), and a rank that stopped alone would hang the others.
        broken = [k for k in ("loss", "grad_norm") if isinstance(logs.get(k), float) and not math.isfinite(logs[k])]
        if self.stop_on_nan and broken:
            self.nan_step = state.global_step
            control.should_training_stop = True
        if self.client is None or not state.is_world_process_zero:
            return
        if any(key.startswith("eval_") for key in logs):
            return  # on_evaluate reports these, with their details
        values = {f"train/{k}": v for k, v in logs.items() if k not in _SUMMARY_KEYS and _is_number(v)}
        summary = {f"summary/{k}": v for k, v in logs.items() if k in _SUMMARY_KEYS}
        if values:
            self.client.emit("metric", {"step": state.global_step, "values": values})
        if summary:
            self.client.emit("metric", {"step": state.global_step, "values": summary})
        self._system(state)
        if time.monotonic() - self._progress_at >= PROGRESS_SECONDS:
            self._progress(args, state)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hooked is not None:
            self._hooked.step = state.global_step + 1

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hooked is not None and kwargs.get("model") is not None:
            self._hooked.before_optimizer_step(kwargs["model"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hooked is not None:
            if self._hooked.watch.save_requested:
                self._hooked.watch.save_requested = False
                control.should_save = True
            if self._hooked.watch.stop_requested is not None:
                control.should_training_stop = True
        if (self.client is not None and time.monotonic() - self._progress_at >= PROGRESS_SECONDS
                and state.is_world_process_zero):
            self._progress(args, state)
        if self._sampler is not None and self._sampler.due(state.global_step):
            values = self._sampler.take(state.global_step, args.process_index)
            if self.client is not None and state.is_world_process_zero:
                self.client.emit("system", {"step": state.global_step, "values": values})

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                    **kwargs: Any) -> None:
        if self.client is None or not metrics or not state.is_world_process_zero:
            return
        values = {f"eval/{k.removeprefix('eval_')}": v for k, v in metrics.items()
                  if k not in _EVAL_NOISE and _is_number(v)}
        data: dict[str, Any] = {"step": state.global_step, "values": values}
        if self.eval_details is not None:
            data.update(self.eval_details())
        self.client.emit("eval", data)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.client is None or not state.is_world_process_zero:
            return
        self._progress(args, state)
        stopped = self._hooked.watch.stop_requested if self._hooked is not None else None
        if self._hooked is not None:
            self._hooked.detach()
        if self._attached and stopped is not None:
            self._end("failed", {"type": "anomaly", "message": stopped.message(),
                                 "hint": f"the batch is saved in {stopped.saved_to}"})
        elif self._attached:
            self._end("completed", None)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Every point logged before the checkpoint is sent or on disk before training goes on: a crash
        # now loses nothing that a resume from this checkpoint would not log again.
        if self.client is not None and state.is_world_process_zero:
            self.client.flush()

    def _progress(self, args: Any, state: Any) -> None:
        assert self.client is not None
        self._progress_at = time.monotonic()
        elapsed = time.time() - self._started_at
        done = state.global_step - self._start_step
        steps_per_second = done / elapsed if elapsed > 0 and done > 0 else None
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)
        self.client.emit("progress", {
            "step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch or 0.0,
            "samples_per_second": steps_per_second * per_step if steps_per_second else None,
            "eta_seconds": (state.max_steps - state.global_step) / steps_per_second if steps_per_second else None})

    def _system(self, state: Any) -> None:
        assert self.client is not None
        cuda = self._cuda
        if cuda is not None:
            values = {"system/gpu_memory_allocated_gb": cuda.memory_allocated() / 2**30,
                      "system/gpu_memory_reserved_gb": cuda.memory_reserved() / 2**30,
                      "system/gpu_max_memory_allocated_gb": cuda.max_memory_allocated() / 2**30}
            self.client.emit("system", {"step": state.global_step, "values": values})
