"""Will it fit, and how long will it take: a job's memory and time, from its spec, before it runs.

The model is built on the meta device from its `config.json` (no weight file is opened), wrapped with
LoRA by peft as the worker wraps it, and run forward once on meta inputs at batch 1 and 2 while a
saved-tensor hook adds up what autograd keeps for the backward pass: the activations, per example, at the
length of the longest example of the data. Weights, gradients and AdamW's two states follow from the
parameters and their dtype. A worker's baseline (its imports on a CPU, the CUDA context on a GPU) and
the device's matmul throughput come from `calibration.py`. Time per epoch is FLOPs (≈ 6 × parameters ×
tokens, + 2 × with gradient checkpointing) over the measured throughput.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from .errors import DataError, FieldProblem, SpecError
from .spec import JobSpec, LoraSpec

MIB = 2**20
SAMPLE_ROWS = 2000  # rows tokenized to count tokens; more rows are scaled from this sample
# Measured training throughput over the calibration's matmul throughput (benchmarks/bench_estimate.py).
EFFICIENCY = {"cpu": 0.35, "cuda": 0.35}
STEP_OVERHEAD_S = {"cpu": 0.02, "cuda": 0.01}  # Trainer, data loader and optimizer bookkeeping per step
# Resident memory per byte of activations. On a CPU glibc's heap keeps what the forward and backward
# passes free (tensors of 128 KiB to 32 MiB come from the heap once its mmap threshold has grown), so the
# process grows well beyond the live tensors: 1.4x (full) to 3x (checkpointing) in
# benchmarks/bench_estimate.py; 1.7 keeps each of them within 15 % of the measured peak. PyTorch's CUDA
# allocator reuses its blocks: the live tensors plus the gradients in flight.
ACTIVATION_FACTOR = {"cpu": 1.7, "cuda": 1.1, "mps": 1.1}
WORKER_EXTRA = {"cpu": 48 * MIB, "cuda": 0, "mps": 0}  # tokenizer, tables, Trainer: beyond the imports
_HALF_BYTES = 2


# -- wire (to move into wire.py with the plugin's twins) ----------------------------------------------
class MemoryEstimate(BaseModel):
    """Bytes at the peak of a training step on one device."""

    weights: int
    gradients: int
    optimizer: int = Field(description="AdamW's two states per trainable parameter")
    activations: int = Field(description="kept for the backward pass, at the spec's batch size")
    runtime: int = Field(description="a worker before its model: imports (CPU) or the CUDA context (GPU)")
    total: int


class DeviceFit(BaseModel):
    name: str
    kind: Literal["cuda", "cpu", "mps"]
    index: int | None = None
    memory: int = Field(description="bytes the job may use: the GPU's memory, or the RAM available now")
    fits: bool
    max_batch_size: int = Field(description="the largest training.batch_size that fits (0: none)")


class Estimate(BaseModel):
    """The answer of POST /api/estimate."""

    architecture: str
    parameters: int
    trainable_parameters: int
    precision: Literal["fp32", "bf16", "fp16"]
    batch_size: int
    sequence_length: int = Field(description="tokens of the longest example (capped at data.max_length)")
    memory: MemoryEstimate
    devices: list[DeviceFit]
    fits: bool
    max_batch_size: int
    examples: int | None = Field(None, description="training examples per epoch (windows, blocks)")
    tokens_per_epoch: int | None = Field(None, description="tokens the model sees per epoch, padding included")
    steps_per_epoch: int | None = None
    seconds_per_epoch: float | None = None
    seconds_total: float | None = None
    warning: str | None = None
    suggestion: str | None = None
    suggested: dict[str, int | float | bool | str] = Field(
        default_factory=dict, description="the settings of the suggestion: dotted spec key -> value")
    notes: list[str] = Field(default_factory=list)


# -- the model, on the meta device --------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """What one training step of the model holds, per the meta run."""

    architecture: str
    parameters: int
    trainable: int
    weight_bytes: int
    trainable_bytes: int  # of the trainable parameters: the gradients; AdamW holds twice this
    activations_1: int  # saved for backward at batch 1
    activations_per_example: int  # each further example
    largest_per_example: int  # the largest saved tensor per example (its gradient appears in backward)
    autocast_copies: int  # mixed precision over float32 weights: autocast's 16-bit copy of each, per step


@dataclass(frozen=True)
class Shape:
    """Lengths of the example that sets the peak: the input, and the target of seq2seq."""

    source: int
    target: int


def _dtype_bytes(name: str | None) -> int:
    return {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}.get(str(name).removeprefix("torch."), 4)


def _config(model: str) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model)


def _meta_model(spec: JobSpec, config: Any, num_labels: int) -> Any:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForQuestionAnswering,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        EncoderDecoderConfig,
        EncoderDecoderModel,
    )

    with torch.device("meta"):
        if spec.task in ("text-classification", "token-classification"):
            config.num_labels = num_labels
            auto = (AutoModelForSequenceClassification if spec.task == "text-classification"
                    else AutoModelForTokenClassification)
            return auto.from_config(config)
        if spec.task == "question-answering":
            return AutoModelForQuestionAnswering.from_config(config)
        if spec.task == "causal-lm":
            return AutoModelForCausalLM.from_config(config)
        if config.is_encoder_decoder:
            config.decoder_start_token_id = config.decoder_start_token_id or 0
            return AutoModelForSeq2SeqLM.from_config(config)
        # mirrors tasks/seq2seq.py: an encoder becomes an encoder-decoder of two copies
        pair = EncoderDecoderConfig.from_encoder_decoder_configs(config, config)
        pair.decoder_start_token_id, pair.pad_token_id = 0, 0
        return EncoderDecoderModel(config=pair)


def _inputs(task: str, batch: int, shape: Shape) -> dict[str, Any]:
    import torch

    ids = torch.zeros(batch, shape.source, dtype=torch.long, device="meta")
    one = torch.zeros(batch, dtype=torch.long, device="meta")
    if task == "text-classification":
        return {"input_ids": ids, "labels": one}
    if task == "question-answering":
        return {"input_ids": ids, "start_positions": one, "end_positions": one}
    if task == "seq2seq":
        return {"input_ids": ids, "labels": torch.zeros(batch, shape.target, dtype=torch.long, device="meta")}
    return {"input_ids": ids, "labels": ids}  # token classification, causal LM


def _saved_bytes(model: Any, inputs: dict[str, Any], checkpointing: bool) -> tuple[int, int]:
    """Bytes that autograd keeps for the backward pass in one forward (weights excluded), and the largest
    tensor among them. With gradient checkpointing a layer keeps only its input; its activations come back
    one layer at a time in the backward pass (the largest layer's are added)."""
    import torch
    from transformers.modeling_layers import GradientCheckpointingLayer

    weights = {id(p) for p in model.parameters()}
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    inside: list[int | None] = [None]
    per_layer = [0] * len(layers)
    first_in_layer = [0] * len(layers)
    outside = 0
    kept: dict[int, Any] = {}  # holds each tensor so that ids stay unique during the forward

    def pack(tensor: Any) -> Any:
        nonlocal outside
        base = tensor._base if tensor._base is not None else tensor
        if id(base) in weights or id(base) in kept:
            return tensor
        kept[id(base)] = base
        size = base.numel() * base.element_size()
        layer = inside[0]
        if layer is None:
            outside += size
        else:
            first_in_layer[layer] = first_in_layer[layer] or size
            per_layer[layer] += size
        return tensor

    def enter(index: int) -> Any:
        return lambda module, args: inside.__setitem__(0, index)

    handles = [layer.register_forward_pre_hook(enter(i)) for i, layer in enumerate(layers)]
    handles += [layer.register_forward_hook(lambda module, args, output: inside.__setitem__(0, None))
                for layer in layers]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    largest = max((t.numel() * t.element_size() for t in kept.values()), default=0)
    if checkpointing and layers:
        return outside + sum(first_in_layer) + max(per_layer), largest
    return outside + sum(per_layer), largest


@lru_cache(maxsize=32)
def _profile(spec_json: str, config_mtime: float, num_labels: int, shape: Shape, half: bool) -> Profile:
    """The model of the spec at `shape`; cached per spec, config file and shape (the form asks often)."""
    import torch

    spec = JobSpec.model_validate_json(spec_json)
    config = _config(spec.model)
    weight_dtype = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32")
    model = _meta_model(spec, config, num_labels)
    model.to(torch.bfloat16 if half else getattr(torch, weight_dtype.removeprefix("torch.")))
    architecture = type(model).__name__
    if spec.lora is not None:
        from peft import get_peft_model

        from .lora import choose_targets, lora_config

        model = get_peft_model(model, lora_config(spec, choose_targets(spec, model)))
        if spec.training.gradient_checkpointing:
            model.enable_input_require_grads()
    model.train()
    parameters = list(model.parameters())
    total = sum(p.numel() for p in parameters)
    trainable = [p for p in parameters if p.requires_grad]
    element = _dtype_bytes(weight_dtype)
    quantized = spec.lora is not None and spec.lora.quantize is not None
    weight_bytes = sum(p.numel() * (element if p.requires_grad or not quantized or p.ndim < 2 else 0.5)
                       for p in parameters)
    # peft keeps adapters in float32 (autocast_adapter_dtype); a full fine-tune trains the weights' dtype
    trainable_bytes = sum(p.numel() * (4 if spec.lora is not None else element) for p in trainable)
    checkpointing = spec.training.gradient_checkpointing
    one, largest = _saved_bytes(model, _inputs(spec.task, 1, shape), checkpointing)
    two, _ = _saved_bytes(model, _inputs(spec.task, 2, shape), checkpointing)
    return Profile(architecture=architecture, parameters=total, trainable=sum(p.numel() for p in trainable),
                   weight_bytes=int(weight_bytes), trainable_bytes=trainable_bytes, activations_1=one,
                   activations_per_example=max(two - one, 0), largest_per_example=largest,
                   autocast_copies=total * _HALF_BYTES if half and element == 4 else 0)


def profile(spec: JobSpec, shape: Shape, num_labels: int = 2, half: bool = False) -> Profile:
    config_file = Path(spec.model) / "config.json"
    mtime = config_file.stat().st_mtime if config_file.is_file() else 0.0
    return _profile(spec.model_dump_json(), mtime, num_labels, shape, half)


# -- the data: examples and tokens --------------------------------------------------------------------
@dataclass(frozen=True)
class DataShape:
    examples: int
    lengths: list[int]  # tokens per example (input; + target for seq2seq) of a sample, in file order
    scale: float  # examples per sampled example
    longest: Shape


@lru_cache(maxsize=4)
def _tokenizer(model: str, mtime: float) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def _lengths(spec: JobSpec, tokenizer: Any, rows: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Input (and target) tokens of each example of `rows`, as the task tokenizes them."""
    data, limit = spec.data, spec.data.max_length
    if spec.task == "text-classification":
        pairs = [r[data.text_pair_column] for r in rows] if data.text_pair_column else None
        encoded = tokenizer([r[data.text_column] for r in rows], pairs, truncation=True, max_length=limit)
        return [len(ids) for ids in encoded["input_ids"]], []
    if spec.task == "token-classification":
        encoded = tokenizer([r[data.tokens_column] for r in rows], is_split_into_words=True, truncation=True,
                            max_length=limit)
        return [len(ids) for ids in encoded["input_ids"]], []
    if spec.task == "question-answering":
        encoded = tokenizer([r[data.question_column].lstrip() for r in rows], [r[data.context_column] for r in rows],
                            truncation="only_second", max_length=limit, stride=data.doc_stride,
                            return_overflowing_tokens=True)
        return [len(ids) for ids in encoded["input_ids"]], []
    if spec.task == "seq2seq":
        encoded = tokenizer([data.source_prefix + r[data.source_column] for r in rows],
                            text_target=[r[data.target_column] for r in rows], truncation=True, max_length=limit)
        return [len(ids) for ids in encoded["input_ids"]], [len(ids) for ids in encoded["labels"]]
    from .tasks.causal_lm import encode_pair, encode_text

    prompt, response = data.prompt_column, data.response_column or ""
    lengths = [len(encode_pair(tokenizer, r[prompt], r[response], data.train_on_prompt)[0] if prompt
                   else encode_text(tokenizer, r[data.text_column])[0]) for r in rows]
    if data.packing:
        total = sum(lengths)
        return [limit] * (total // limit) + ([total % limit] if total % limit else []), []
    return [min(n, limit) for n in lengths], []


def data_shape(spec: JobSpec) -> DataShape:
    """The training examples and their token lengths, from a sample of the file read through the tasks'
    cache."""
    from .tasks.data import cached_read

    table = cached_read(spec.task, spec.data.train, spec.data)
    rows = len(table)
    picked = sorted(random.Random(0).sample(range(rows), SAMPLE_ROWS)) if rows > SAMPLE_ROWS else list(range(rows))
    config_file = Path(spec.model) / "config.json"
    tokenizer = _tokenizer(spec.model, config_file.stat().st_mtime if config_file.is_file() else 0.0)
    inputs, targets = _lengths(spec, tokenizer, table.select(picked).to_list())
    kept = 1 - (spec.data.eval_fraction or 0)
    scale = rows * kept / len(picked)
    lengths = [a + b for a, b in zip(inputs, targets, strict=True)] if targets else inputs
    return DataShape(examples=max(1, round(len(inputs) * scale)), lengths=lengths, scale=scale,
                     longest=Shape(max(inputs, default=1), max(targets, default=1)))


def padded_tokens(lengths: list[int], batch: int, seed: int) -> int:
    """Tokens the model sees when shuffled examples are padded to the longest of their batch."""
    order = lengths[:]
    random.Random(seed).shuffle(order)
    return sum(max(order[i:i + batch]) * len(order[i:i + batch]) for i in range(0, len(order), batch))


# -- devices ------------------------------------------------------------------------------------------
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


# -- the estimate -------------------------------------------------------------------------------------
def _precision(spec: JobSpec, device: DeviceMemory) -> Literal["fp32", "bf16", "fp16"]:
    if spec.training.precision != "auto":
        return spec.training.precision
    return "bf16" if device.kind == "cuda" else "fp32"  # mirrors worker.precision_args (bf16 where supported)


def _memory(profile: Profile, batch: int, runtime: int, factor: float) -> MemoryEstimate:
    saved = (profile.activations_1 + (batch - 1) * profile.activations_per_example
             + batch * profile.largest_per_example)
    activations = int(saved * factor) + profile.autocast_copies
    parts = dict(weights=profile.weight_bytes, gradients=profile.trainable_bytes,
                 optimizer=2 * profile.trainable_bytes, activations=activations, runtime=runtime)
    return MemoryEstimate(**parts, total=sum(parts.values()))


def _max_batch(profile: Profile, memory: int, runtime: int, factor: float) -> int:
    fixed = _memory(profile, 1, runtime, factor).total
    if fixed > memory:
        return 0
    per_example = math.ceil((profile.activations_per_example + profile.largest_per_example) * factor)
    return 1 << 16 if per_example == 0 else 1 + min((memory - fixed) // per_example, (1 << 16) - 1)


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
                     "estimated at data.max_length and time is unknown")
    longest = shape.longest if shape else Shape(spec.data.max_length, spec.data.max_length)
    num_labels = _num_labels(spec)
    precision = _precision(spec, device)
    found = profile(spec, longest, num_labels, half=precision != "fp32")
    calibration = throughput.get(device.key)
    runtime = calibration.baseline_bytes + WORKER_EXTRA[device.kind] if calibration else 0
    factor = ACTIVATION_FACTOR[device.kind]
    batch = spec.training.batch_size
    memory = _memory(found, batch, runtime, factor)
    fits_list = [DeviceFit(name=d.name, kind=d.kind, index=d.index, memory=d.memory, fits=memory.total <= d.memory,
                           max_batch_size=_max_batch(found, d.memory, runtime, factor)) for d in devices]
    result = Estimate(
        architecture=found.architecture, parameters=found.parameters, trainable_parameters=found.trainable,
        precision=precision, batch_size=batch, sequence_length=longest.source, memory=memory, devices=fits_list,
        fits=fits_list[0].fits, max_batch_size=fits_list[0].max_batch_size, notes=notes)
    if shape is not None:
        _add_time(result, spec, found, shape, device, calibration, len(devices))
    if not result.fits:
        _suggest(result, spec, device, longest, num_labels, runtime)
    elif memory.total > 0.8 * device.memory:
        result.notes.append(f"close to the limit: {_gib(memory.total)} of {_gib(device.memory)}")
    if spec.task == "seq2seq" or spec.training.eval_strategy != "no":
        result.notes.append("evaluation (eval_batch_size, generation) is not part of the estimate")
    return result


def _num_labels(spec: JobSpec) -> int:
    if spec.task not in ("text-classification", "token-classification"):
        return 2
    from .tasks import load_task
    from .tasks.data import cached_read

    try:
        table = cached_read(spec.task, spec.data.train, spec.data)
        names = load_task(spec.task).label_names(table, None, spec.data)
    except (DataError, OSError):
        return 2
    return max(2, len(names or []))


def _add_time(result: Estimate, spec: JobSpec, found: Profile, shape: DataShape, device: DeviceMemory,
              calibration: Throughput | None, device_count: int) -> None:
    t = spec.training
    per_step = t.batch_size * t.gradient_accumulation_steps * device_count
    tokens = round(padded_tokens(shape.lengths, t.batch_size, t.seed) * shape.scale)
    result.examples, result.tokens_per_epoch = shape.examples, tokens
    result.steps_per_epoch = math.ceil(shape.examples / per_step)
    if calibration is None:
        result.notes.append(f"no throughput measured for {device.name}: time is unknown")
        return
    # forward 2, backward 4, checkpointing recomputes the forward. Frozen weights need no weight gradients
    # (4 in theory), but LoRA's extra layers ate that saving: its steps took as long as full ones on a CPU.
    factor = 6 + (2 if t.gradient_checkpointing else 0)
    # an encoder-decoder's tokens pass through half of its parameters (source: encoder, target: decoder)
    parameters = found.parameters / 2 if spec.task == "seq2seq" else found.parameters
    flops = factor * parameters * tokens
    seconds = (flops / (calibration.flops * EFFICIENCY[device.kind] * device_count)
               + result.steps_per_epoch * t.gradient_accumulation_steps * STEP_OVERHEAD_S[device.kind])
    result.seconds_per_epoch = seconds
    result.seconds_total = (seconds * t.epochs if t.max_steps is None
                            else seconds * t.max_steps / result.steps_per_epoch)


def _suggest(result: Estimate, spec: JobSpec, device: DeviceMemory, longest: Shape, num_labels: int,
             runtime: int) -> None:
    """The warning, and the first change that makes the job fit: a smaller batch (same examples per step
    through gradient accumulation), gradient checkpointing, LoRA, 4-bit QLoRA on a GPU."""
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
        largest = _max_batch(profile(candidate, longest, num_labels, half), device.memory, runtime,
                             ACTIVATION_FACTOR[device.kind])
        if largest == 0:
            continue
        settings = dict(settings)
        if largest < t.batch_size:
            settings["training.batch_size"] = largest
            settings["training.gradient_accumulation_steps"] = math.ceil(effective / largest)
        result.suggested = settings
        result.suggestion = ", ".join(f"{k} = {_toml(v)}" for k, v in settings.items()) + (
            f" ({what}; {settings.get('training.batch_size', t.batch_size)} × "
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

