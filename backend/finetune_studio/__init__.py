"""Fine-Tune Studio: fine-tune Hugging Face transformers locally, watch them live, inspect tensors.

`StudioCallback` is imported lazily so that `import finetune_studio` stays cheap (the debugger
imports it inside the user's process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .reporter import StudioCallback

__all__ = ["StudioCallback", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "StudioCallback":
        from .reporter import StudioCallback

        return StudioCallback
    raise AttributeError(f"module 'finetune_studio' has no attribute {name!r}")
