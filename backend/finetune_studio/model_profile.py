"""The model side of the estimate: what one training step and one evaluation step of the spec's model hold
and compute, found without a single weight.

The model is built on the meta device from its `config.json` (no weight file is opened), wrapped with
LoRA by peft as the worker wraps it, and run on meta inputs at batch 1 and 2:
- a training forward, while a saved-tensor hook adds up what autograd keeps for the backward pass (the
  activations) and a FLOP counter counts the forward's FLOPs (the backward pass costs twice those);
- an evaluation forward under `no_grad`, while a dispatch mode follows every tensor from its creation to
  its release: the peak of what lives at once (the evaluation batch's transient memory), and the logits
  the evaluation loop keeps for the metrics.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .data_shape import Shape, config_mtime
from .spec import JobSpec

_HALF_BYTES = 2


@dataclass(frozen=True)
class Profile:
    """What one step of the model holds and computes, per the meta runs."""

    architecture: str
    parameters: int
    trainable: int
    weight_bytes: int
    trainable_bytes: int  # of the trainable parameters: the gradients; AdamW holds twice this
    activations_1: int  # saved for backward at batch 1
    activations_per_example: int  # each further example
    largest_per_example: int  # the largest saved tensor per example (its gradient appears in backward)
    autocast_copies: int  # mixed precision over float32 weights: autocast's 16-bit copy of each, per step
    forward_flops_per_example: int  # a training forward of one example at the profiled shape
    eval_1: int  # the most that lives at once in an evaluation forward (no grad) at batch 1
    eval_per_example: int  # each further example
    predictions_per_example: int  # what the evaluation loop keeps per example for the metrics (logits, labels)


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
        # decoder_input_ids given (as DataCollatorForSeq2Seq gives them): from labels alone, an
        # EncoderDecoderModel builds a padding mask that its causal mask reads a value of (.all())
        target = torch.zeros(batch, shape.target, dtype=torch.long, device="meta")
        return {"input_ids": ids, "labels": target, "decoder_input_ids": target}
    return {"input_ids": ids, "labels": ids}  # token classification, causal LM


def _training_forward(model: Any, inputs: dict[str, Any], checkpointing: bool) -> tuple[int, int, int]:
    """Bytes that autograd keeps for the backward pass in one forward (weights excluded), the largest
    tensor among them, and the forward's FLOPs. With gradient checkpointing a layer keeps only its input;
    its activations come back one layer at a time in the backward pass (the largest layer's are added)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
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
    counter = FlopCounterMode(display=False)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), counter:
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    largest = max((t.numel() * t.element_size() for t in kept.values()), default=0)
    flops = int(counter.get_total_flops())
    if checkpointing and layers:
        return outside + sum(first_in_layer) + max(per_layer), largest, flops
    return outside + sum(per_layer), largest, flops


def _live_peak(model: Any, inputs: dict[str, Any]) -> tuple[int, int]:
    """The most bytes alive at once during an evaluation forward (no grad), and the bytes of its logits."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Live(TorchDispatchMode):
        """Every storage an operation creates counts from its creation until Python releases it."""

        def __init__(self) -> None:
            super().__init__()
            self.sizes: dict[int, int] = {}
            self.live = self.peak = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            for tensor in tree_flatten(out)[0]:
                if isinstance(tensor, torch.Tensor):
                    storage = tensor.untyped_storage()
                    if storage._cdata not in self.sizes:
                        self.sizes[storage._cdata] = storage.nbytes()
                        self.live += storage.nbytes()
                        self.peak = max(self.peak, self.live)
                        weakref.finalize(storage, self.release, storage._cdata)
            return out

        def release(self, key: int) -> None:
            self.live -= self.sizes.pop(key)

    with torch.no_grad(), Live() as live:
        output = model(**inputs)
    logits = [getattr(output, name, None) for name in ("logits", "start_logits", "end_logits")]
    return live.peak, sum(t.numel() * t.element_size() for t in logits if isinstance(t, torch.Tensor))


def _evaluation(spec: JobSpec, model: Any, shape: Shape) -> tuple[int, int, int]:
    """Peak bytes of an evaluation forward at batch 1 and per further example, and the bytes per example
    that the evaluation loop gathers for the metrics (the causal LM task has no metrics: loss only).
    Seq2seq evaluates by generating up to data.max_length tokens: counted as a forward at that length."""
    if spec.task == "seq2seq":
        shape = Shape(shape.source, spec.data.max_length)
    model.eval()
    try:
        one, logits_1 = _live_peak(model, _inputs(spec.task, 1, shape))
        two, _ = _live_peak(model, _inputs(spec.task, 2, shape))
    finally:
        model.train()
    labels = shape.source * 8 if spec.task == "token-classification" else 8
    if spec.task == "causal-lm":
        kept = 0
    elif spec.task == "seq2seq":
        kept = 2 * shape.target * 8  # generated ids and labels
    else:
        kept = logits_1 + labels
    return one, max(two - one, 0), kept


@lru_cache(maxsize=32)
def _profile(spec_json: str, mtime: float, num_labels: int, shape: Shape, half: bool) -> Profile:
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
    one, largest, flops = _training_forward(model, _inputs(spec.task, 1, shape), checkpointing)
    two, _, _ = _training_forward(model, _inputs(spec.task, 2, shape), checkpointing)
    eval_1, eval_per_example, predictions = _evaluation(spec, model, shape)
    return Profile(architecture=architecture, parameters=total, trainable=sum(p.numel() for p in trainable),
                   weight_bytes=int(weight_bytes), trainable_bytes=trainable_bytes, activations_1=one,
                   activations_per_example=max(two - one, 0), largest_per_example=largest,
                   autocast_copies=total * _HALF_BYTES if half and element == 4 else 0,
                   forward_flops_per_example=flops, eval_1=eval_1, eval_per_example=eval_per_example,
                   predictions_per_example=predictions)


def profile(spec: JobSpec, shape: Shape, num_labels: int = 2, half: bool = False) -> Profile:
    return _profile(spec.model_dump_json(), config_mtime(spec.model), num_labels, shape, half)
