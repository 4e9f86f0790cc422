"""Float32 arrays on the wire: little-endian bytes, row-major, in base64 (NaN and ±inf survive, and it is
5x smaller than a JSON list of numbers). `debug.capture` encodes, the server decodes and re-encodes."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

from .errors import StudioError


def encode_array(array: Any) -> dict[str, Any]:
    """{"dtype", "shape", "data"} of an ndarray or a torch tensor (detached and moved to the CPU)."""
    if hasattr(array, "detach"):
        array = array.detach().to("cpu").contiguous().numpy()
    data = np.ascontiguousarray(array, dtype="<f4")
    return {"dtype": "float32", "shape": list(data.shape),
            "data": base64.b64encode(data.tobytes()).decode("ascii")}


def decode_array(name: str, shape: list[int], data: str) -> np.ndarray:
    """Little-endian float32 from base64; the byte count must fit the shape."""
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise StudioError(f"array {name!r}: data is not base64",
                          hint="encode the float32 bytes with base64") from None
    expected = math.prod(shape) * 4
    if len(raw) != expected:
        raise StudioError(f"array {name!r}: {len(raw)} bytes for shape {shape} float32 (needs {expected})",
                          hint="send little-endian float32 bytes, row-major, in base64")
    return np.frombuffer(raw, dtype="<f4").reshape(shape)
