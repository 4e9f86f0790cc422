"""Reporting a training run to the server: `StudioCallback` (a TrainerCallback) and its client.

The client numbers events per attempt (`seq`) and sends them from a background thread: a metric, an
evaluation, a log line or the end as soon as it is emitted (a chart is waiting), at most one request per
50 ms (a high-rate stream goes in batches), and progress within 0.2 s. When the server cannot be reached
it appends the batch to a spool file (JSON lines) and replays the spool, oldest first, as soon as a send
succeeds again; a failed send also reads the state folder's server.json again, since a restarted server
has another port and token. The server stores `(attempt, seq)` once, so a replay never duplicates a
point. `flush()` returns once everything emitted is on the server or on disk: the worker calls it before
a checkpoint counts, and `on_save` does, so a crash after a checkpoint loses no point before it. After
15 s without a send the client sends an empty batch, a heartbeat for the server's watchdog.

In a user's own script, `StudioCallback()` opens an *attached* run on the server found by the rule of
`discovery.py` (without one it warns once and keeps spooling: it never stops the user's training), and
ends it: completed at the end of training, failed with the exception when the script raises, failed
when it exits before the end.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from pydantic import ValidationError
from transformers import TrainerCallback

from .discovery import NoServer, find_server, read_server_json
from .wire import IngestBatch, ReporterEvent, json_safe

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2  # the longest an event waits before it is sent (progress and system ride along)
MIN_INTERVAL = 0.05  # the shortest time between two sends: a high-rate stream is sent in batches
MAX_BATCH = 1000
HEARTBEAT_SECONDS = 15.0  # an empty batch after this long without a send: the server's watchdog hears the run
REDISCOVER_SECONDS = 2.0  # at most one look at server.json per this long while sends fail
URGENT = frozenset({"metric", "eval", "log", "end"})  # sent as soon as emitted (a chart waits for them)


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


class ReporterClient:
    """Sends events of one job attempt; spools what cannot be sent.

    `state_dir` is the server's state folder: when a send fails, the client reads its server.json again
    (a restarted server has another port and token) and replays the spool there."""

    def __init__(self, url: str | None, token: str | None, job_id: str | None, attempt: int,
                 spool_path: Path, state_dir: Path | None = None) -> None:
        self.url, self.token, self.job_id, self.attempt = url, token, job_id, attempt
        self.spool_path = spool_path
        self.state_dir = state_dir
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self._seq = 0
        self._pending: list[ReporterEvent] = []
        self._lock = threading.Lock()  # guards _seq and _pending (taken by the training thread: kept short)
        self._sending = threading.Lock()  # one flush at a time: the spool has one writer
        self._wake = threading.Event()
        self._closed = False
        self._warned = False
        self._last_send = time.monotonic()
        self._last_discovery = 0.0
        self._http = httpx.Client(timeout=10, trust_env=False)  # loopback: never through a proxy
        self._thread = threading.Thread(target=self._run, name="studio-reporter", daemon=True)
        self._thread.start()

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        """Queue one event. An event the server would refuse is dropped with a warning: reporting never
        stops the training it reports on."""
        with self._lock:
            try:
                event = ReporterEvent.model_validate(
                    {"seq": self._seq + 1, "type": type_, "time": time.time(), "data": json_safe(data)})
            except ValidationError as error:
                log.warning("Fine-Tune Studio: a %s event was not sent: %s", type_, error.errors()[0]["msg"])
                return
            self._seq += 1
            self._pending.append(event)
            if type_ in URGENT or len(self._pending) >= MAX_BATCH:
                self._wake.set()

    def flush(self) -> None:
        """Send what is pending now, or spool it; returns when it is on the server or on disk."""
        self._flush()

    def close(self) -> None:
        """Send what is left (or spool it); returns when done. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=60)
        self._http.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            started = time.monotonic()
            self._flush()
            if self._closed:
                self._flush()
                return
            # Whatever arrives meanwhile waits for the next send: many points per request at high rates.
            time.sleep(max(0.0, MIN_INTERVAL - (time.monotonic() - started)))

    def _flush(self) -> None:
        with self._sending:
            with self._lock:
                events, self._pending = self._pending, []
            for start in range(0, len(events), MAX_BATCH):  # a burst (a fast loop) goes as several batches
                part = events[start:start + MAX_BATCH]
                batch = IngestBatch(attempt=self.attempt, events=part).model_dump(mode="json")
                if self.spool_path.exists() or not self._send(batch):
                    self._spool(batch)
            if self.spool_path.exists():
                self._replay()
            elif not events and time.monotonic() - self._last_send >= self.heartbeat_seconds:
                self._send({"attempt": self.attempt, "events": []})

    def _send(self, batch: dict[str, Any]) -> bool:
        if not self.url or not self.job_id:
            return False
        if self._post(batch):
            return True
        # A restarted server listens elsewhere, with another token: look again, and send there.
        return self._rediscover() and self._post(batch)

    def _post(self, batch: dict[str, Any]) -> bool:
        try:
            response = self._http.post(f"{self.url}/api/jobs/{self.job_id}/events", json=batch,
                                       headers={"Authorization": f"Bearer {self.token}"})
        except httpx.TransportError as error:
            self._warn(f"Fine-Tune Studio server unreachable ({error}); spooling to {self.spool_path}")
            return False
        if response.status_code >= 300:
            self._warn(f"Fine-Tune Studio server answered {response.status_code} ({response.text[:200]}); "
                       f"spooling to {self.spool_path}")
            return False
        self._last_send = time.monotonic()
        return True

    def _rediscover(self) -> bool:
        """Whether the state folder's server.json now names another live server (then it is used)."""
        now = time.monotonic()
        if self.state_dir is None or now - self._last_discovery < REDISCOVER_SECONDS:
            return False
        self._last_discovery = now
        server = read_server_json(self.state_dir)
        if server is None or (server.url, server.token) == (self.url, self.token):
            return False
        log.info("Fine-Tune Studio: the server is now at %s; sending there", server.url)
        self.url, self.token, self._warned = server.url, server.token, False
        return True

    def _spool(self, batch: dict[str, Any]) -> None:
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spool_path.open("ab") as handle:
            if handle.tell() and not self._ends_a_line():
                handle.write(b"\n")  # the last line was cut short by a kill: keep this one apart
            handle.write(json.dumps(batch).encode() + b"\n")

    def _ends_a_line(self) -> bool:
        with self.spool_path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def _replay(self) -> None:
        """Send the spool oldest first; keep what still fails (in order)."""
        if not self.url or not self.job_id:
            return
        lines = self.spool_path.read_text(encoding="utf-8").splitlines()
        for position, line in enumerate(lines):
            try:
                batch = json.loads(line) if line.strip() else None
            except ValueError:
                log.warning("Fine-Tune Studio: skipping a spooled batch cut short by a crash (%d bytes)", len(line))
                continue
            if batch is not None and not self._send(batch):
                rest = self.spool_path.with_name(self.spool_path.name + ".tmp")
                rest.write_text("\n".join(lines[position:]) + "\n", encoding="utf-8")
                os.replace(rest, self.spool_path)  # a kill meanwhile leaves the whole old spool, never half
                return
        self.spool_path.unlink()
        log.info("Fine-Tune Studio: delivered %d spooled batches", len(lines))

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(message)


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

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               **kwargs: Any) -> None:
        if self.client is None or not logs or not state.is_world_process_zero:
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
        self._progress(args, state)
        # A NaN gradient norm poisons the weights as surely as a NaN loss does.
        broken = [k for k in ("loss", "grad_norm") if isinstance(logs.get(k), float) and not math.isfinite(logs[k])]
        if self.stop_on_nan and broken:
            self.nan_step = state.global_step
            control.should_training_stop = True

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
        if self.client is not None and state.is_world_process_zero and state.global_step % 5 == 0:
            self._progress(args, state)

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
        elapsed = time.time() - self._started_at
        done = state.global_step - self._start_step
        steps_per_second = done / elapsed if elapsed > 0 and done > 0 else None
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)
        self.client.emit("progress", {
            "step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch or 0.0,
            "samples_per_second": steps_per_second * per_step if steps_per_second else None,
            "eta_seconds": (state.max_steps - state.global_step) / steps_per_second if steps_per_second else None})

    def _system(self, state: Any) -> None:
        import torch

        assert self.client is not None
        if torch.cuda.is_available():
            values = {"system/gpu_memory_allocated_gb": torch.cuda.memory_allocated() / 2**30,
                      "system/gpu_memory_reserved_gb": torch.cuda.memory_reserved() / 2**30,
                      "system/gpu_max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 2**30}
            self.client.emit("system", {"step": state.global_step, "values": values})
