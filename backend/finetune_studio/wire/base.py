"""The bounded types the bodies the API takes are built from (`Count`, `Finite`, `Name`, `Text`...), the
limits of a reporter batch, and how non-finite floats go out (`finite`, `json_safe`)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from ..spec import storable

# What the API takes is bounded and storable: integers fit SQLite's signed 64 bits (a larger one made the
# store raise OverflowError: a 500), floats are finite, strings are valid Unicode and not huge.
INT64_MAX = 2**63 - 1
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable)]
Text = Annotated[str, Field(max_length=1 << 20), AfterValidator(storable)]  # a log line: logtail's MAX_LINE
ShortText = Annotated[str, Field(max_length=16_384), AfterValidator(storable)]
MAX_VALUES = 1000  # values of one metric, eval or system event
MAX_EVENTS = 10_000  # events of one reporter batch (the reporter sends at most 1000 at a time)


def finite(value: float | None) -> float | None:
    """NaN and ±inf are not JSON: they travel as null, decided here only."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (in dicts, lists and tuples too) replaced by null."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
