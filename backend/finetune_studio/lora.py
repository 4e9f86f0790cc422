"""LoRA adapters through peft, for every task.

The worker calls `wrap(spec, model)` after the task's `prepare` and before it builds the Trainer: the
model's weights freeze and small adapters (rank `r`) train beside the layers named in
`lora.target_modules`, plus the task's new head (peft keeps `classifier`, `score` and `qa_outputs`
trainable and saves them with the adapter). After training, `trainer.save_model` writes the adapter
(`adapter_config.json` + `adapter_model.safetensors`) to `JOB_DIR/model`, and with `merge = true`
`save_merged` writes base + adapter as one plain model to `JOB_DIR/model-merged`.

Target modules default to the attention projections of the architecture, found by name in the model
(`q_proj`/`v_proj` for Llama and most decoders, `query`/`value` for BERT, `q`/`v` for T5, `c_attn` for
GPT-2...). A named target that matches no layer is an error that lists the layers that exist.
`quantize = "4bit"` (QLoRA) loads the base model in 4 bits with bitsandbytes: the tasks pass
`model_kwargs(spec)` to `from_pretrained` (spec.check_files already refuses it where there is no GPU).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from .errors import FieldProblem, SpecError, Unsupported
from .spec import JobSpec

# The first pair whose every name is a layer of the model wins; the order puts the most common first.
DEFAULT_TARGETS: tuple[tuple[str, ...], ...] = (
    ("q_proj", "v_proj"), ("query", "value"), ("q", "v"), ("c_attn",), ("query_key_value",), ("qkv_proj",),
    ("Wqkv",), ("q_lin", "v_lin"),
)

_TASK_TYPES = {"text-classification": "SEQ_CLS", "token-classification": "TOKEN_CLS",
               "question-answering": "QUESTION_ANS", "seq2seq": "SEQ_2_SEQ_LM", "causal-lm": "CAUSAL_LM"}


def model_kwargs(spec: JobSpec) -> dict[str, Any]:
    """Extra `from_pretrained` arguments: the 4-bit quantization of QLoRA, or nothing."""
    if spec.lora is None or spec.lora.quantize is None:
        return {}
    if importlib.util.find_spec("bitsandbytes") is None:
        raise Unsupported("lora.quantize = \"4bit\" needs the bitsandbytes package, which is not installed",
                          hint="pip install bitsandbytes, or remove lora.quantize to train plain LoRA")
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute),
            # each process of a multi-GPU (torchrun) job holds its whole copy on its own GPU
            "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}


def adaptable_layers(model: Any) -> dict[str, str]:
    """Full name -> class name of every layer LoRA can adapt (linear, embedding, convolution)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, Conv1D)
    # bitsandbytes' Linear4bit is a torch.nn.Linear too
    return {name: type(module).__name__ for name, module in model.named_modules() if isinstance(module, kinds)}


def _matches(layer: str, target: str) -> bool:
    # peft's rule for a list of names: the layer's full name is the target or ends with ".target"
    return layer == target or layer.endswith("." + target)


def choose_targets(spec: JobSpec, model: Any) -> list[str]:
    """The spec's target modules, checked against the model; or the architecture's attention layers."""
    assert spec.lora is not None
    layers = adaptable_layers(model)
    short_names = sorted({name.rsplit(".", 1)[-1] for name in layers})
    if spec.lora.target_modules:
        missing = [t for t in spec.lora.target_modules if not any(_matches(name, t) for name in layers)]
        if missing:
            raise SpecError([FieldProblem(
                "lora.target_modules",
                f"{', '.join(map(repr, missing))} {'is' if len(missing) == 1 else 'are'} not a layer of this model "
                f"({type(model).__name__}); its layers that LoRA can adapt are named: {', '.join(short_names)}")])
        return list(spec.lora.target_modules)
    for names in DEFAULT_TARGETS:
        if all(any(_matches(layer, n) for layer in layers) for n in names):
            return list(names)
    raise SpecError([FieldProblem(
        "lora.target_modules", f"no default for {type(model).__name__}: name the layers to adapt; "
        f"its layers that LoRA can adapt are named: {', '.join(short_names)}")])


def lora_config(spec: JobSpec, targets: list[str]) -> Any:
    """The peft LoraConfig of a spec's [lora] (the worker's and the estimate's)."""
    from peft import LoraConfig

    assert spec.lora is not None
    return LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                      target_modules=targets, task_type=_TASK_TYPES[spec.task])


def wrap(spec: JobSpec, model: Any) -> Any:
    """The task's model with LoRA adapters; only the adapters (and the task's new head) train."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    lora = spec.lora
    assert lora is not None
    targets = choose_targets(spec, model)
    if lora.quantize:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=spec.training.gradient_checkpointing)
    wrapped = get_peft_model(model, lora_config(spec, targets))
    if spec.training.gradient_checkpointing:
        wrapped.enable_input_require_grads()  # frozen embeddings give no grad for checkpointing to carry
    trainable, total = wrapped.get_nb_trainable_parameters()
    print(f"LoRA r={lora.r} alpha={lora.alpha} on {', '.join(targets)}: {trainable:,} of {total:,} parameters "
          f"train ({100 * trainable / total:.2f}%)", flush=True)
    return wrapped


def save_merged(model: Any, tokenizer: Any, folder: Path) -> None:
    """Base + adapter as one plain model (loads without peft). The adapter is folded into the weights:
    `model` is not a PeftModel afterwards. With 4-bit QLoRA peft merges into the quantized weights."""
    merged = model.merge_and_unload()
    merged.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    print(f"saved the merged model to {folder}", flush=True)
