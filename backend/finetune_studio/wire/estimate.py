"""The estimate (issue 16, `POST /api/estimate`; computed by estimate.py): memory at the peak per device,
whether the spec fits, and how long an epoch takes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class MemoryEstimate(BaseModel):
    """Bytes at the peak of a job on one device. A training step holds the gradients and the activations;
    an evaluation step (no gradients: the optimizer freed them) its batch's transient tensors and the
    predictions gathered so far; the peak is the larger of the two, over weights, optimizer and runtime."""

    weights: int
    gradients: int
    optimizer: int = Field(description="AdamW's two states per trainable parameter")
    activations: int = Field(description="kept for the backward pass, at the spec's batch size")
    evaluation: int = Field(0, description="an evaluation step at eval_batch_size (no gradients then): its "
                            "tensors and the predictions kept for the metrics; 0 without evaluation")
    runtime: int = Field(description="a worker before its model: imports (CPU) or the CUDA context (GPU)")
    total: int = Field(description="weights + optimizer + runtime + max(gradients + activations, evaluation)")


class DeviceFit(BaseModel):
    name: str
    kind: Literal["cuda", "cpu", "mps"]
    index: int | None = None
    memory: int = Field(description="bytes the job may use: the GPU's memory, or the RAM available now")
    fits: bool
    max_batch_size: int = Field(description="the largest training.batch_size that fits (0: none)")


class Estimate(BaseModel):
    """The answer of POST /api/estimate: will the spec fit on this machine, and how long an epoch takes."""

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
    seconds_per_epoch: float | None = Field(None, description="training and the epoch's evaluations")
    seconds_total: float | None = None
    warning: str | None = None
    suggestion: str | None = None
    suggested: dict[str, int | float | bool | str] = Field(
        default_factory=dict, description="the settings of the suggestion: dotted spec key -> value")
    notes: list[str] = Field(default_factory=list)
