"""`POST /api/estimate`: will a spec fit on this machine, and how long will an epoch take (`estimate.py`).

The body is a job spec, as for submit; the data file may be missing still (the form asks while the user
types): then memory is estimated at data.max_length and the time is unknown.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .. import calibration
from ..estimate import DeviceMemory, Throughput, available_memory, estimate
from ..spec import parse_spec
from ..wire import Estimate
from .deps import SchedulerDep, SettingsDep

router = APIRouter()


@router.post("/estimate")
def post_estimate(body: dict[str, Any], scheduler: SchedulerDep, settings: SettingsDep) -> Estimate:
    spec = parse_spec(body, settings.project_dir)
    devices = [DeviceMemory(name=d.name, kind=d.kind, index=d.index, memory=available_memory(d.kind, d.memory_total_mb))
               for d in scheduler.devices()]
    first = devices[0]
    measured = calibration.cached(settings.data_dir, first.key)
    throughput = {first.key: Throughput(flops=measured.flops, baseline_bytes=measured.baseline_bytes)}
    # mirrors devices.DeviceSlots.free_for: "all", or at least one
    count = len(devices) if spec.resources.gpus == "all" else max(1, min(int(spec.resources.gpus), len(devices)))
    return estimate(spec, devices[:count], throughput)
