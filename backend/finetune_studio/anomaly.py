"""Break into the debugger when training goes wrong: detectors, and what happens when one fires.

Three detectors, each cheap enough to run on every step (one scalar read per forward pass and one per
optimizer step, a reduction over the logits, a median of a short window):

- `nan`: a non-finite loss or logits on a forward pass, or a non-finite gradient norm;
- `spike`: a training loss at least 3 times the median of the last `window` losses whose robust
  z-score (median and MAD of their logarithms) passes `spike_z`;
- `grad_spike`: the same test on the gradient norm before the optimizer step (`grad_z`).

When one fires: an `anomaly` event goes to the server (kind, step, value, threshold, the batch's training
rows); with a debugger attached (debugpy, or PyCharm's pydevd) the process stops in `stop_here`, whose
locals are the batch (`inputs`), the `model`, its `outputs` and the `loss`; without one the batch is saved
to `<folder>/anomalies/step-<N>.pt`, a checkpoint is asked for, and the run goes on or stops, as
`on_anomaly` says.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DETECTORS = ("nan", "spike", "grad_spike")
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class AnomalySettings:
    break_on: frozenset[str] = frozenset()
    on_anomaly: str = "continue"  # or "stop"
    spike_z: float = 8.0
    grad_z: float = 8.0
    window: int = 50
    warmup: int = 20  # values seen before a spike can fire

    def __post_init__(self) -> None:
        unknown = set(self.break_on) - set(DETECTORS)
        if unknown:
            raise ValueError(f"unknown detectors {sorted(unknown)}: use any of {', '.join(DETECTORS)}")


@dataclass
class Anomaly:
    kind: str  # nan | spike | grad_spike
    step: int  # the optimizer step being computed (1-based, as /steps/{step}/batch counts)
    value: float | None  # None: not a finite number
    threshold: float | None
    detail: str
    rows: list[int] = field(default_factory=list)  # training file rows of the batch
    saved_to: str | None = None

    def to_event(self) -> dict[str, Any]:
        data = asdict(self)
        if data["value"] is not None and not math.isfinite(data["value"]):
            data["value"] = None
        return data

    def message(self) -> str:
        rows = ", ".join(map(str, self.rows[:20])) + (" ..." if len(self.rows) > 20 else "")
        return f"{self.detail} at step {self.step}; the batch holds training rows [{rows}]"


class RobustSpike:
    """Robust z-score of each new value against the median and MAD of the previous `window` values, on a
    log scale (spikes are multiplicative: a loss going from 0.05 to 0.5 is the same jump as 0.5 to 5). A
    spike must also be `min_ratio` times the median, so that a quiet window does not turn noise into
    alarms."""

    def __init__(self, z: float, window: int, warmup: int, min_ratio: float = 3.0) -> None:
        self.z = z
        self.warmup = warmup
        self.min_ratio = min_ratio
        self.logs: deque[float] = deque(maxlen=window)

    def score(self, value: float) -> float | None:
        """The z-score of `value` (None during warm-up, for a jump under `min_ratio`, or for a value that is
        not positive); a positive `value` then joins the window."""
        if not value > 0:
            return None
        log = math.log(value)
        score = None
        if len(self.logs) >= self.warmup:
            median = statistics.median(self.logs)
            if log - median >= math.log(self.min_ratio):
                spread = MAD_TO_SIGMA * statistics.median(abs(v - median) for v in self.logs)
                score = (log - median) / max(spread, 0.05)
        self.logs.append(log)
        return score


def debugger_attached() -> bool:
    """A debugger that `breakpoint()` would stop in: debugpy with a client, or PyCharm's pydevd."""
    debugpy = sys.modules.get("debugpy")
    if debugpy is not None and debugpy.is_client_connected():
        return True
    pydevd = sys.modules.get("pydevd")
    return pydevd is not None and getattr(pydevd, "GetGlobalDebugger", lambda: None)() is not None


def stop_here(anomaly: Anomaly, inputs: Any, model: Any, outputs: Any, loss: Any) -> None:
    """The frame the debugger stops in: inspect `inputs`, `model`, `outputs`, `loss` and `anomaly`, e.g.
    `finetune_studio.debug.capture(inputs["input_ids"])`; continue to go on training."""
    debugpy = sys.modules.get("debugpy")
    if debugpy is not None and debugpy.is_client_connected():
        debugpy.breakpoint()  # stops on the next line, in this frame
        _ = (anomaly, inputs, model, outputs, loss)  # the stop lands here
        return
    breakpoint()  # pydevd (PyCharm) hooks breakpoint()


class AnomalyStop(Exception):
    """Raised to end a run whose spec says `on_anomaly = "stop"`."""

    def __init__(self, anomaly: Anomaly) -> None:
        super().__init__(anomaly.message())
        self.anomaly = anomaly


class AnomalyWatch:
    """Runs the detectors and handles what fires. `report` sends the event (the reporter's emit)."""

    def __init__(self, settings: AnomalySettings, folder: Path, report: Callable[[str, dict[str, Any]], None],
                 flush: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.folder = folder
        self.report = report
        self.flush = flush
        self.loss_spike = RobustSpike(settings.spike_z, settings.window, settings.warmup)
        self.grad_spike = RobustSpike(settings.grad_z, settings.window, settings.warmup)
        self.fired: list[Anomaly] = []
        self.stop_requested: Anomaly | None = None
        self.save_requested = False

    @property
    def active(self) -> bool:
        return bool(self.settings.break_on)

    def check_forward(self, step: int, loss: Any, outputs: Any) -> Anomaly | None:
        """After a forward pass: a non-finite loss or logits, or a loss spike."""
        wanted = self.settings.break_on
        value = float(loss.detach().float()) if loss is not None else None
        if "nan" in wanted:
            if value is not None and not math.isfinite(value):
                return Anomaly("nan", step, value, None, f"the training loss is {value}")
            logits = _logits(outputs)
            if logits is not None and not bool(logits.detach().isfinite().all()):
                return Anomaly("nan", step, value, None, "the logits hold NaN or infinite values")
        if "spike" in wanted and value is not None and math.isfinite(value):
            score = self.loss_spike.score(value)
            if score is not None and score > self.settings.spike_z:
                return Anomaly("spike", step, value, self.settings.spike_z,
                               f"the training loss jumped to {value:.4g} (robust z-score {score:.1f})")
        return None

    def check_gradients(self, step: int, grad_norm: Any) -> Anomaly | None:
        """Before the optimizer step: a non-finite gradient norm, or a gradient-norm spike."""
        if grad_norm is None:
            return None
        wanted = self.settings.break_on
        value = float(grad_norm.detach().float()) if hasattr(grad_norm, "detach") else float(grad_norm)
        if "nan" in wanted and not math.isfinite(value):
            return Anomaly("nan", step, value, None, f"the gradient norm is {value}")
        if "grad_spike" in wanted and math.isfinite(value):
            score = self.grad_spike.score(value)
            if score is not None and score > self.settings.grad_z:
                return Anomaly("grad_spike", step, value, self.settings.grad_z,
                               f"the gradient norm jumped to {value:.4g} (robust z-score {score:.1f})")
        return None

    def fire(self, anomaly: Anomaly, rows: list[int], inputs: Any, model: Any, outputs: Any, loss: Any) -> None:
        anomaly.rows = rows
        if debugger_attached():
            self.report("anomaly", anomaly.to_event())
            self.flush()  # the dashboard and the IDE see it while the process stands still
            stop_here(anomaly, inputs, model, outputs, loss)
        else:
            anomaly.saved_to = str(self._save(anomaly, inputs))
            self.report("anomaly", anomaly.to_event())
            self.save_requested = True
            if self.settings.on_anomaly == "stop":
                self.stop_requested = anomaly
        self.fired.append(anomaly)

    def _save(self, anomaly: Anomaly, inputs: Any) -> Path:
        import torch

        folder = self.folder / "anomalies"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step-{anomaly.step}-{anomaly.kind}.pt"
        batch = {k: v.detach().cpu() if hasattr(v, "detach") else v for k, v in dict(inputs).items()}
        torch.save({"anomaly": anomaly.to_event(), "inputs": batch}, path)
        return path


def _logits(outputs: Any) -> Any:
    if outputs is None:
        return None
    logits = outputs.get("logits") if isinstance(outputs, dict) else getattr(outputs, "logits", None)
    if logits is None and isinstance(outputs, tuple | list) and len(outputs) > 1:
        logits = outputs[1]
    return logits if hasattr(logits, "isfinite") else None


def watching_trainer(base: type) -> type:
    """A subclass of `base` (a Trainer whose `training_step` leaves the batch's rows in `current_rows`)
    that runs an `AnomalyWatch` on every forward pass and before every optimizer step."""

    class WatchingTrainer(base):  # type: ignore[misc]
        anomaly_watch: AnomalyWatch | None = None
        current_rows: list[int] | None = None
        _last_forward: tuple[Any, Any, Any] | None = None
        _fired_at: int | None = None  # one anomaly per step: a NaN loss also makes NaN gradients

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            watch = self.anomaly_watch
            if watch is None or not watch.active or not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            self._last_forward = (inputs, outputs, loss)
            step = self.state.global_step + 1
            anomaly = watch.check_forward(step, loss, outputs) if self._fired_at != step else None
            if anomaly is not None:
                self._fire(anomaly, inputs, model, outputs, loss)
            return (loss, outputs) if return_outputs else loss

        def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
            grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
            watch = self.anomaly_watch
            if watch is None or not watch.active:
                return grad_norm
            step = self.state.global_step + 1
            if self._fired_at != step:
                anomaly = watch.check_gradients(step, grad_norm)
                if anomaly is not None:
                    inputs, outputs, loss = self._last_forward or ({}, None, None)
                    self._fire(anomaly, inputs, model, outputs, loss)
            if "nan" in watch.settings.break_on and grad_norm is not None and not math.isfinite(float(grad_norm)):
                # One broken batch would make every weight NaN at the optimizer step: skip its update instead.
                model.zero_grad(set_to_none=True)
            return grad_norm

        def _fire(self, anomaly: Anomaly, inputs: Any, model: Any, outputs: Any, loss: Any) -> None:
            assert self.anomaly_watch is not None
            self._fired_at = anomaly.step
            self.anomaly_watch.fire(anomaly, list(self.current_rows or []), inputs, model, outputs, loss)
            if self.anomaly_watch.save_requested:
                self.control.should_save = True
            if self.anomaly_watch.stop_requested is not None:
                self.control.should_training_stop = True

    WatchingTrainer.__name__ = f"Watching{base.__name__}"
    return WatchingTrainer


class HookedWatch:
    """The detectors for a Trainer that is not ours (a user's script with `StudioCallback(break_on=...)`):
    a forward hook on the model sees each training forward pass (its inputs, outputs and loss), and
    `before_optimizer_step` the gradients. The batch's training rows are not known there."""

    def __init__(self, watch: AnomalyWatch) -> None:
        self.watch = watch
        self.step = 0
        self._handle: Any = None
        self._fired_at: int | None = None
        self._last: tuple[Any, Any, Any] = ({}, None, None)

    def attach(self, model: Any) -> None:
        self._handle = model.register_forward_hook(self._forward, with_kwargs=True)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()

    def _forward(self, module: Any, args: Any, kwargs: Any, output: Any) -> None:
        if not module.training:
            return
        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        self._last = (kwargs, output, loss)
        if self._fired_at != self.step:
            anomaly = self.watch.check_forward(self.step, loss, output)
            if anomaly is not None:
                self._fired_at = self.step
                self.watch.fire(anomaly, [], kwargs, module, output, loss)

    def before_optimizer_step(self, model: Any) -> None:
        import torch

        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads)
        if self._fired_at != self.step:
            anomaly = self.watch.check_gradients(self.step, norm)
            if anomaly is not None:
                self._fired_at = self.step
                inputs, outputs, loss = self._last
                self.watch.fire(anomaly, [], inputs, model, outputs, loss)
        if "nan" in self.watch.settings.break_on and not math.isfinite(float(norm)):
            model.zero_grad(set_to_none=True)  # skip the broken update instead of poisoning every weight
