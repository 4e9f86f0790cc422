"""JobSpec: the one description of a job, from `finetune.toml`, the API or the dashboard's form.

Field names follow `TrainingArguments` where one exists; anything else for the Trainer passes through
`[training.args]`. Relative paths resolve against the TOML's folder (or the project folder for API
submissions). Unknown keys are errors with a "did you mean".
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import FieldProblem, SpecError

T = TypeVar("T")


def storable(value: T) -> T:
    """`value` unchanged when every string in it (keys too) is valid Unicode. JSON can carry a lone
    surrogate (`"\\ud800"`), which SQLite cannot store and no JSON encoder sends out again."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"not valid Unicode (a lone surrogate at character {error.start})") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key)
            storable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            storable(item)
    return value


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("a path cannot hold a NUL character")
    return value


# Bounded strings and integers: a 100 MB job name was once stored and listed on every GET /api/jobs.
Name = Annotated[str, Field(max_length=200), AfterValidator(storable)]
PathText = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(storable), AfterValidator(_no_nul)]
Column = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable)]
Small = Annotated[int, Field(ge=1, le=2**31 - 1)]

TaskName = Literal[
    "text-classification", "token-classification", "question-answering", "seq2seq", "causal-lm"
]
TASKS: tuple[str, ...] = TaskName.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DataSpec(_Strict):
    """Where the examples are and which columns hold what; the column keys depend on the task."""

    train: PathText = Field(description="training file: csv, json, jsonl or parquet (or CoNLL text)")
    eval: PathText | None = Field(None, description="evaluation file; or set eval_fraction")
    eval_fraction: float | None = Field(None, gt=0, lt=1, description="hold out this share of train")
    format: Literal["auto", "csv", "json", "parquet", "conll"] = "auto"
    max_length: int = Field(256, ge=8, le=32768, description="tokens per example (longer ones are cut)")
    # text-classification
    text_column: Column = "text"
    text_pair_column: Column | None = None
    label_column: Column = "label"
    # token-classification
    tokens_column: Column = "tokens"
    tags_column: Column = "tags"
    # question-answering
    question_column: Column = "question"
    context_column: Column = "context"
    answers_column: Column = "answers"
    doc_stride: int = Field(128, ge=0, le=32768)
    # seq2seq
    source_column: Column = "source"
    target_column: Column = "target"
    source_prefix: Annotated[str, Field(max_length=4096), AfterValidator(storable)] = ""
    # causal-lm
    prompt_column: Column | None = None
    response_column: Column | None = None
    train_on_prompt: bool = False
    packing: bool = False

    @model_validator(mode="after")
    def _one_eval_source(self) -> DataSpec:
        if self.eval is not None and self.eval_fraction is not None:
            raise ValueError("give either eval (a file) or eval_fraction, not both")
        return self


class TrainingSpec(_Strict):
    """Hyper-parameters; names follow TrainingArguments, defaults the seed example's."""

    epochs: float = Field(3, gt=0, le=1e6, allow_inf_nan=False, description="num_train_epochs")
    max_steps: Small | None = Field(None, description="stop after this many optimizer steps")
    batch_size: Small = Field(16, description="per_device_train_batch_size")
    eval_batch_size: Small = Field(64, description="per_device_eval_batch_size")
    gradient_accumulation_steps: Small = 1
    learning_rate: float = Field(2e-5, gt=0, lt=1)
    warmup_steps: int | None = Field(None, ge=0, le=2**31 - 1, description="or warmup_ratio")
    warmup_ratio: float | None = Field(None, ge=0, lt=1, description="defaults to 0.06 when neither is set")
    weight_decay: float = Field(0.01, ge=0, allow_inf_nan=False)
    lr_scheduler_type: Column = "linear"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = Field(42, ge=0, le=2**32 - 1, description="numpy takes seeds below 2**32")
    logging_steps: Small = Field(10, description="log the training loss every N steps")
    eval_strategy: Literal["no", "steps", "epoch"] = "epoch"
    eval_steps: Small | None = None
    save_strategy: Literal["no", "steps", "epoch"] = "epoch"
    save_steps: Small | None = None
    save_total_limit: Small | None = 2
    gradient_checkpointing: bool = False
    args: Annotated[dict[str, Any], AfterValidator(storable)] = Field(
        default_factory=dict, max_length=200, description="any other TrainingArguments, unchanged")

    @model_validator(mode="after")
    def _one_warmup(self) -> TrainingSpec:
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ValueError("give either warmup_steps or warmup_ratio, not both")
        return self


class LoraSpec(_Strict):
    """Train LoRA adapters with peft instead of all weights."""

    r: int = Field(8, ge=1, le=65536)
    alpha: int = Field(16, ge=1, le=2**31 - 1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[Column] | None = Field(None, max_length=1000,
                                                description="chosen per architecture when not given")
    merge: bool = Field(False, description="also save base + adapter merged into one model")
    quantize: Literal["4bit"] | None = Field(None, description="QLoRA: needs a GPU and bitsandbytes")


class ResourcesSpec(_Strict):
    """Where a job runs: one process, N DDP processes (torchrun; gloo on the CPU), or N Ray Train workers."""

    gpus: Annotated[int, Field(ge=0, le=1024)] | Literal["all"] = Field(
        1, description="GPUs for this job (0 = CPU); more than 1 runs one DDP process per GPU")
    processes: int = Field(1, ge=1, le=64, description="CPU processes (DDP with gloo) on a machine without GPUs")
    executor: Literal["local", "ray"] = Field(
        "local", description="\"ray\": Ray Train workers (pip install finetune-studio[ray])")
    ray_address: PathText | None = Field(None, description="Ray cluster address; default: RAY_ADDRESS, else a "
                                                           "local Ray started for the job")

    @model_validator(mode="after")
    def _one_count(self) -> ResourcesSpec:
        if self.processes > 1 and self.gpus not in (0, 1):
            raise ValueError("give either gpus (one process per GPU) or processes (CPU processes), not both")
        return self


class DebugSpec(_Strict):
    """Catch training going wrong at the step it goes wrong (`anomaly.py`)."""

    break_on: list[Literal["nan", "spike", "grad_spike"]] = Field(
        default_factory=list, max_length=3, description="nan: non-finite loss, logits or gradients; spike: a loss "
        "jump; grad_spike: a gradient-norm jump. With a debugger attached the process stops there")
    on_anomaly: Literal["continue", "stop"] = Field(
        "continue", description="without a debugger: save the batch and a checkpoint, then go on or fail the job")
    spike_z: float = Field(8.0, gt=0, le=1e6, description="robust z-score (median and MAD) that counts as a spike")
    grad_z: float = Field(8.0, gt=0, le=1e6, description="the same for the gradient norm")
    window: int = Field(50, ge=5, le=100_000, description="recent steps the z-scores compare against")


class JobSpec(_Strict):
    """A fine-tuning job."""

    name: Name = Field("", description="shown in lists; defaults to the TOML's folder name or the task")
    task: TaskName = "text-classification"
    model: PathText = Field(description="a local model folder, or a hub id where the network allows")
    data: DataSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    lora: LoraSpec | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    debug: DebugSpec = Field(default_factory=DebugSpec)

    @model_validator(mode="after")
    def _default_name(self) -> JobSpec:
        if not self.name:
            self.name = self.task
        return self


def _did_you_mean(unknown: str, model: type[BaseModel]) -> str:
    close = difflib.get_close_matches(unknown, list(model.model_fields), n=1, cutoff=0.6)
    return f"unknown key; did you mean {close[0]!r}?" if close else (
        f"unknown key; expected one of: {', '.join(model.model_fields)}"
    )


def _model_at(path: tuple[Any, ...]) -> type[BaseModel]:
    """The pydantic model that holds the key at `path` (for "did you mean")."""
    model: type[BaseModel] = JobSpec
    for part in path[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        for candidate in (DataSpec, TrainingSpec, LoraSpec, ResourcesSpec, DebugSpec):
            if annotation is candidate or (annotation is not None and candidate in getattr(annotation, "__args__", ())):
                model = candidate
                break
    return model


def problems_of(error: ValidationError) -> list[FieldProblem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        dotted = ".".join(str(p) for p in loc)
        if item["type"] == "extra_forbidden":
            message = _did_you_mean(str(loc[-1]), _model_at(loc))
        elif item["type"] == "missing":
            message = "required"
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            if "input" in item and item["type"] not in ("model_type",):
                given = repr(item["input"])
                message += f" (got {given if len(given) <= 200 else given[:200] + '...'})"
        problems.append(FieldProblem(dotted, message))
    return problems


def parse_spec(raw: dict[str, Any], base_dir: Path) -> JobSpec:
    """Validate `raw` and resolve its paths against `base_dir`; raises SpecError naming each field."""
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as error:
        raise SpecError(problems_of(error)) from None
    data = spec.data
    data.train = _resolve(data.train, base_dir)
    if data.eval is not None:
        data.eval = _resolve(data.eval, base_dir)
    if _looks_like_path(spec.model, base_dir):
        spec.model = _resolve(spec.model, base_dir)
    return spec


def load_spec(path: Path) -> JobSpec:
    """Read a `finetune.toml`; relative paths resolve against its folder."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SpecError([FieldProblem("", f"{path}: not valid TOML: {error}")]) from None
    raw.setdefault("name", path.parent.resolve().name if path.name == "finetune.toml" else
                   path.name.removesuffix(".finetune.toml").removesuffix(".toml"))
    return parse_spec(raw, path.parent.resolve())


def _looks_like_path(value: str, base_dir: Path) -> bool:
    return value.startswith((".", "/", "~")) or (base_dir / value).expanduser().exists()


def _resolve(value: str, base_dir: Path) -> str:
    return str((base_dir / Path(value).expanduser()).resolve())


def check_files(spec: JobSpec) -> None:
    """Refuse at submit what would fail an hour later: missing data files and model folders."""
    problems = []
    for field, value in (("data.train", spec.data.train), ("data.eval", spec.data.eval)):
        if value is not None and not Path(value).is_file():
            problems.append(FieldProblem(field, f"no such file: {value}"))
    model = Path(spec.model)
    if model.is_absolute():
        if not model.is_dir():
            problems.append(FieldProblem("model", f"no such model folder: {model}"))
        elif (model / "config.json").is_file():
            problem = _model_config_problem(model / "config.json")
            if problem:
                problems.append(FieldProblem("model", problem))
        elif not (model / "adapter_config.json").is_file():
            problems.append(FieldProblem(
                "model", f"{model} has no config.json: give a folder saved with save_pretrained()"))
    else:
        problem = _hub_model_problem(spec.model)
        if problem:
            problems.append(FieldProblem("model", problem))
    if spec.lora and spec.lora.quantize and not _cuda_available():
        problems.append(FieldProblem(
            "lora.quantize", "4-bit QLoRA needs a CUDA GPU and bitsandbytes; this machine has no GPU: "
            "remove quantize to train plain LoRA on the CPU"))
    problems += training_args_problems(spec.training.args)
    problems += schedule_problems(spec.training.lr_scheduler_type)
    if problems:
        raise SpecError(problems)


def schedule_problems(name: str) -> list[FieldProblem]:
    """A learning-rate schedule transformers does not have (a ValueError in the worker otherwise)."""
    from transformers import SchedulerType

    known = [schedule.value for schedule in SchedulerType]
    if name in known:
        return []
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return [FieldProblem("training.lr_scheduler_type", "not a schedule transformers has" + (
        f"; did you mean {close[0]!r}?" if close else f"; use one of: {', '.join(known)}"))]


def _model_config_problem(config: Path) -> str | None:
    """A config.json that `from_pretrained` would misread (`{}` once failed an hour later with a message
    about sentencepiece)."""
    import json

    try:
        content = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{config} is not readable JSON ({error}): give a folder saved with save_pretrained()"
    model_type = content.get("model_type") if isinstance(content, dict) else None
    if not isinstance(model_type, str) or not model_type:
        return (f"{config} is not a model configuration (it names no model_type): give a folder saved with "
                "save_pretrained()")
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        close = difflib.get_close_matches(model_type, list(CONFIG_MAPPING.keys()), n=1)
        return (f"{config}: model_type {model_type!r} is not one this transformers knows"
                + (f"; did you mean {close[0]!r}?" if close else ""))
    return None


# Arguments whose value the studio decides: the job's checkpoints stay in its folder, where resume finds them.
_OWN_ARGS = {"output_dir": "a job's checkpoints go to its own folder (<job>/checkpoints), where resume finds "
                           "them; the trained model is saved to the job's output_dir: remove training.args.output_dir"}


def training_args_problems(args: dict[str, Any]) -> list[FieldProblem]:
    """`[training.args]` keys that TrainingArguments (Seq2SeqTrainingArguments, which the worker builds)
    does not take, with a "did you mean", and those the studio sets itself; found at submit, not as a
    TypeError in the worker."""
    import dataclasses

    from transformers import Seq2SeqTrainingArguments

    known = [f.name for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init]
    problems = []
    for key in args:
        if key in _OWN_ARGS:
            problems.append(FieldProblem(f"training.args.{key}", _OWN_ARGS[key]))
        elif key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            problems.append(FieldProblem(f"training.args.{key}", "not an argument of TrainingArguments" + (
                f"; did you mean {close[0]!r}?" if close else "; see the transformers docs for TrainingArguments")))
    return problems


def _hub_model_problem(model_id: str) -> str | None:
    import os

    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]  # public, re-exported

    try:
        validate_repo_id(model_id)
    except HFValidationError:
        return (f"{model_id!r} is neither a local folder nor a hub id (like 'org/name'): give the path of a folder "
                "saved with save_pretrained()")
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("1", "true", "TRUE", "yes"):
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        return None
    return (f"{model_id!r} is not a local folder and the hub is offline (HF_HUB_OFFLINE=1) with no cached "
            "copy: give the path of a folder saved with save_pretrained()")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def spec_json_schema() -> dict[str, Any]:
    return JobSpec.model_json_schema()
