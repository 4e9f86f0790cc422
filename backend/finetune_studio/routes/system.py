"""`/api/health` (open), `/api/system`, `/api/schema/job-spec`."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter

from .. import __version__
from ..spec import spec_json_schema
from ..wire import Health, SystemInfo
from .deps import SchedulerDep

open_router = APIRouter()
router = APIRouter()


@open_router.get("/health")
def health() -> Health:
    return Health(version=__version__, pid=os.getpid())


@router.get("/system")
def system(scheduler: SchedulerDep) -> SystemInfo:
    import torch
    import transformers

    return SystemInfo(devices=scheduler.devices(),
                      versions={"finetune_studio": __version__, "torch": torch.__version__,
                                "transformers": transformers.__version__})


@router.get("/schema/job-spec")
def job_spec_schema() -> dict[str, Any]:
    return spec_json_schema()
