"""Will it fit, and how long will it take: a job's memory and time, from its spec, before it runs.

The model's share comes from `model_profile.py` (the model on the meta device: parameters, what a
training step keeps for the backward pass, what an evaluation step holds at once, FLOPs), the data's
from `data_shape.py` (examples, tokens, the evaluation set), a worker's baseline (its imports on a CPU,
the CUDA context on a GPU) and the device's matmul throughput from `calibration.py`. This module adds
them up against each device, finds the largest batch that fits, and, when the job will not fit, the
first setting that makes it fit. Time per epoch is the counted FLOPs (forward, backward = 2 × forward,
+ 1 × forward with gradient checkpointing, + the epoch's evaluations) over the measured throughput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .data_shape import DataShape, Shape, data_shape, num_labels, padded_tokens
from .errors import DataError, FieldProblem, SpecError
from .model_profile import Profile, profile
from .spec import JobSpec, LoraSpec
from .wire import DeviceFit, Estimate, MemoryEstimate

MIB = 2**20
# Training throughput (counted FLOPs per second) over the calibration's matmul throughput. CPU: the median
# of benchmarks/bench_estimate.py's ten cases (one thread; 0.4 to 1.0 on a busy machine). CUDA: not
# measured yet (no GPU lent), a typical small-model MFU.
EFFICIENCY = {"cpu": 0.75, "cuda": 0.35}
STEP_OVERHEAD_S = {"cpu": 0.02, "cuda": 0.01}  # Trainer, data loader and optimizer bookkeeping per step
# Resident memory per byte of activations (and of an evaluation step's tensors). On a CPU glibc's heap
# keeps what the forward and backward passes free (tensors of 128 KiB to 32 MiB come from the heap once its
# mmap threshold has grown), so the process grows well beyond the live tensors: 1.4x (full) to 3x
# (checkpointing); with 1.7 the ten cases of benchmarks/bench_estimate.py (two BERT sizes and MiniLM,
# LoRA, checkpointing, evaluation at batch 128) measure 0.87 to 1.12 of the estimate. PyTorch's CUDA
# allocator reuses its blocks: the live tensors plus the gradients in flight.
ACTIVATION_FACTOR = {"cpu": 1.7, "cuda": 1.1, "mps": 1.1}
WORKER_EXTRA = {"cpu": 48 * MIB, "cuda": 0, "mps": 0}  # tokenizer, tables, Trainer: beyond the imports


@dataclass(frozen=True)
class DeviceMemory:
    """A device a job may run on and the bytes it may use there."""

    name: str
    kind: Literal["cuda", "cpu", "mps"]
    index: int | None
    memory: int

    @property
    def key(self) -> str:
        return "cpu" if self.kind == "cpu" else f"{self.kind}:{self.index or 0}"


@dataclass(frozen=True)
class Throughput:
    flops: float
    baseline_bytes: int


@dataclass(frozen=True)
class Load:
    """What a job puts on a device besides its model: batch sizes, evaluation set, worker, allocator."""

    batch: int
    eval_batch: int
    eval_examples: int  # 0: no evaluation
    runtime: int
    factor: float  # resident bytes per byte of tensors (ACTIVATION_FACTOR)


def _precision(spec: JobSpec, device: DeviceMemory) -> Literal["fp32", "bf16", "fp16"]:
    if spec.training.precision != "auto":
        return spec.training.precision
    return "bf16" if device.kind == "cuda" else "fp32"  # mirrors worker.precision_args (bf16 where supported)


def _activations(found: Profile, batch: int, factor: float) -> int:
    saved = found.activations_1 + (batch - 1) * found.activations_per_example + batch * found.largest_per_example
    return int(saved * factor) + found.autocast_copies


def _evaluation(found: Profile, load: Load, eval_batch: int | None = None) -> int:
    if load.eval_examples == 0:
        return 0
    batch = min(eval_batch or load.eval_batch, load.eval_examples)
    transient = found.eval_1 + (batch - 1) * found.eval_per_example
    return int(transient * load.factor) + found.autocast_copies + load.eval_examples * found.predictions_per_example


def _memory(found: Profile, load: Load) -> MemoryEstimate:
    parts = dict(weights=found.weight_bytes, gradients=found.trainable_bytes, optimizer=2 * found.trainable_bytes,
                 activations=_activations(found, load.batch, load.factor), evaluation=_evaluation(found, load),
                 runtime=load.runtime)
    total = (parts["weights"] + parts["optimizer"] + parts["runtime"]
             + max(parts["gradients"] + parts["activations"], parts["evaluation"]))
    return MemoryEstimate(**parts, total=total)


def _max_batch(found: Profile, memory: int, load: Load) -> int:
    """The largest training batch that fits `memory` (0: none, or the evaluation alone does not fit)."""
    static = found.weight_bytes + 2 * found.trainable_bytes + load.runtime
    if static + _evaluation(found, load) > memory:
        return 0
    room = memory - static - found.trainable_bytes
    if _activations(found, 1, load.factor) > room:
        return 0
    per_example = math.ceil((found.activations_per_example + found.largest_per_example) * load.factor)
    spare = room - _activations(found, 1, load.factor)
    return 1 << 16 if per_example == 0 else 1 + min(spare // per_example, (1 << 16) - 1)


def _max_eval_batch(found: Profile, memory: int, load: Load) -> int:
    """The largest eval_batch_size up to the spec's that fits `memory` beside weights and optimizer."""
    static = found.weight_bytes + 2 * found.trainable_bytes + load.runtime
    fits = [b for b in (load.eval_batch, *(1 << k for k in range(16, -1, -1)))
            if b <= load.eval_batch and static + _evaluation(found, load, b) <= memory]
    return fits[0] if fits else 0


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / MIB:.0f} MiB"


def estimate(spec: JobSpec, devices: list[DeviceMemory], throughput: dict[str, Throughput]) -> Estimate:
    """Memory and time of `spec` on the first of `devices` (the kind its workers get); `throughput` maps a
    device's key (`cpu`, `cuda:0`) to its calibration."""
    if not (Path(spec.model) / "config.json").is_file():
        raise SpecError([FieldProblem("model", f"{spec.model} has no config.json: give a folder saved with "
                                      "save_pretrained()")])
    device = devices[0]
    notes: list[str] = []
    try:
        shape: DataShape | None = data_shape(spec)
    except (DataError, OSError) as error:
        shape = None
        notes.append(f"the training data could not be read ({getattr(error, 'message', error)}): memory is "
                     "estimated at data.max_length, without evaluation, and time is unknown")
    longest = shape.longest if shape else Shape(spec.data.max_length, spec.data.max_length)
    labels = num_labels(spec)
    precision = _precision(spec, device)
    found = profile(spec, longest, labels, half=precision != "fp32")
    calibration = throughput.get(device.key)
    t = spec.training
    load = Load(batch=t.batch_size, eval_batch=t.eval_batch_size, eval_examples=shape.eval_examples if shape else 0,
                runtime=calibration.baseline_bytes + WORKER_EXTRA[device.kind] if calibration else 0,
                factor=ACTIVATION_FACTOR[device.kind])
    memory = _memory(found, load)
    fits_list = [DeviceFit(name=d.name, kind=d.kind, index=d.index, memory=d.memory, fits=memory.total <= d.memory,
                           max_batch_size=_max_batch(found, d.memory, load)) for d in devices]
    result = Estimate(
        architecture=found.architecture, parameters=found.parameters, trainable_parameters=found.trainable,
        precision=precision, batch_size=t.batch_size, sequence_length=longest.source, memory=memory,
        devices=fits_list, fits=fits_list[0].fits, max_batch_size=fits_list[0].max_batch_size, notes=notes)
    if shape is not None:
        _add_time(result, spec, found, shape, device, calibration, len(devices))
    if not result.fits:
        _suggest(result, spec, device, longest, labels, load)
    elif memory.total > 0.8 * device.memory:
        result.notes.append(f"close to the limit: {_gib(memory.total)} of {_gib(device.memory)}")
    if spec.task == "seq2seq" and load.eval_examples:
        result.notes.append("evaluation generates: counted as a forward pass at data.max_length target tokens")
    return result


def _add_time(result: Estimate, spec: JobSpec, found: Profile, shape: DataShape, device: DeviceMemory,
              calibration: Throughput | None, device_count: int) -> None:
    t = spec.training
    per_step = t.batch_size * t.gradient_accumulation_steps * device_count
    tokens = round(padded_tokens(shape.lengths, t.batch_size, t.seed) * shape.scale)
    result.examples, result.tokens_per_epoch = shape.examples, tokens
    steps = result.steps_per_epoch = math.ceil(shape.examples / per_step)
    if calibration is None:
        result.notes.append(f"no throughput measured for {device.name}: time is unknown")
        return
    profiled = shape.longest.source + (shape.longest.target if spec.task == "seq2seq" else 0)
    per_token = found.forward_flops_per_example / profiled
    # backward = 2 x forward; checkpointing recomputes the forward. Frozen weights need no weight gradients,
    # but LoRA's extra layers ate that saving: its steps took as long as full ones on a CPU.
    training = (3 + (1 if t.gradient_checkpointing else 0)) * per_token * tokens
    evaluations = 0.0
    if shape.eval_examples:
        evaluations = 1.0 if t.eval_strategy == "epoch" else steps / (t.eval_steps or t.logging_steps)
    eval_tokens = padded_tokens(shape.lengths, t.eval_batch_size, t.seed) * shape.eval_examples / len(shape.lengths)
    evaluation = evaluations * per_token * eval_tokens
    seconds = ((training + evaluation) / (calibration.flops * EFFICIENCY[device.kind] * device_count)
               + steps * t.gradient_accumulation_steps * STEP_OVERHEAD_S[device.kind])
    result.seconds_per_epoch = seconds
    result.seconds_total = seconds * t.epochs if t.max_steps is None else seconds * t.max_steps / steps


def _suggest(result: Estimate, spec: JobSpec, device: DeviceMemory, longest: Shape, labels: int, load: Load) -> None:
    """The warning, and the first change that makes the job fit: a smaller batch (same examples per step
    through gradient accumulation) and a smaller evaluation batch, gradient checkpointing, LoRA, 4-bit
    QLoRA on a GPU."""
    t = spec.training
    result.warning = (f"will not fit: needs about {_gib(result.memory.total)} at batch size {t.batch_size}, "
                      f"{device.name} has {_gib(device.memory)}")
    effective = t.batch_size * t.gradient_accumulation_steps
    half = result.precision != "fp32"
    candidates: list[tuple[JobSpec, dict[str, Any], str]] = [(spec, {}, "")]
    if not t.gradient_checkpointing:
        checkpointed = spec.model_copy(update={"training": t.model_copy(update={"gradient_checkpointing": True})})
        candidates.append((checkpointed, {"training.gradient_checkpointing": True}, "gradient checkpointing"))
    if spec.lora is None and spec.task != "seq2seq":
        candidates.append((spec.model_copy(update={"lora": LoraSpec()}), {"lora.r": 8}, "LoRA adapters"))
    elif spec.lora is not None and spec.lora.quantize is None and device.kind == "cuda":
        quantized = spec.lora.model_copy(update={"quantize": "4bit"})
        candidates.append((spec.model_copy(update={"lora": quantized}), {"lora.quantize": "4bit"}, "4-bit QLoRA"))
    for candidate, settings, what in candidates:
        found = profile(candidate, longest, labels, half)
        eval_batch = _max_eval_batch(found, device.memory, load) if load.eval_examples else load.eval_batch
        largest = _max_batch(found, device.memory, replace(load, eval_batch=max(eval_batch, 1)))
        if eval_batch == 0 or largest == 0:
            continue
        settings = dict(settings)
        if largest < t.batch_size:
            settings["training.batch_size"] = largest
            settings["training.gradient_accumulation_steps"] = math.ceil(effective / largest)
        if eval_batch < t.eval_batch_size:
            settings["training.eval_batch_size"] = eval_batch
        result.suggested = settings
        result.suggestion = ", ".join(f"{k} = {_toml(v)}" for k, v in settings.items()) + (
            f" ({what + '; ' if what else ''}{settings.get('training.batch_size', t.batch_size)} × "
            f"{settings.get('training.gradient_accumulation_steps', t.gradient_accumulation_steps)} examples per step)")
        return
    result.suggestion = (f"even batch size 1 does not fit on {device.name}: lower data.max_length (the longest "
                         f"example has {longest.source} tokens) or choose a smaller model")


def _toml(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, str) else str(value)


def available_memory(kind: str, total_mb: float | None) -> int:
    """Bytes a job may use on a device: a GPU's memory, or the RAM available now on the CPU."""
    if kind == "cpu" or total_mb is None:
        import psutil

        return int(psutil.virtual_memory().available)
    return int(total_mb * MIB)
