"""The JSON Schema the plugin ships for finetune.toml is the backend's `JobSpec.model_json_schema()`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from finetune_studio.spec import JobSpec

SCRIPT = Path(__file__).resolve().parents[1] / "plugin" / "scripts" / "job_spec_schema.py"


def load_script():
    spec = importlib.util.spec_from_file_location("job_spec_schema", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_schema_is_the_job_spec_schema() -> None:
    """A field added to, renamed in or retyped in JobSpec must reach the editor: regenerate the file."""
    script = load_script()
    assert script.SHIPPED.is_file(), f"missing {script.SHIPPED}: run python {SCRIPT}"
    assert json.loads(script.SHIPPED.read_text(encoding="utf-8")) == JobSpec.model_json_schema(), (
        f"{script.SHIPPED} is stale: run python {SCRIPT}")
    assert script.main(["--check"]) == 0


def test_schema_refuses_unknown_keys() -> None:
    """What the editor highlights as unknown is what the server refuses (extra="forbid")."""
    schema = json.loads(load_script().SHIPPED.read_text(encoding="utf-8"))
    assert schema.get("additionalProperties") is False
    assert {"name", "task", "model", "data", "training"} <= set(schema["properties"])
