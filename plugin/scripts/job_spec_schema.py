"""Writes the JSON Schema of `JobSpec` that the plugin ships for `finetune.toml` / `*.finetune.toml`.

The IDE applies it to those files through the JSON Schema support of PyCharm's TOML plugin: completion of
keys and values, their descriptions on hover, and unknown keys or wrong types highlighted. The file is
`JobSpec.model_json_schema()` as it is, the schema the dashboard's new-job form reads from
`GET /api/schema/job-spec`; `tests/test_plugin_schema.py` fails when the two differ.

    python plugin/scripts/job_spec_schema.py           rewrite the shipped file
    python plugin/scripts/job_spec_schema.py --check   exit 1 (naming the file) when it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from finetune_studio.spec import JobSpec

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "main" / "resources" / "schemas" / "finetune.schema.json"


def render() -> str:
    return json.dumps(JobSpec.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not SHIPPED.is_file() or SHIPPED.read_text(encoding="utf-8") != text:
            print(f"{SHIPPED} differs from JobSpec.model_json_schema(): run python {__file__}", file=sys.stderr)
            return 1
        return 0
    SHIPPED.parent.mkdir(parents=True, exist_ok=True)
    SHIPPED.write_text(text, encoding="utf-8")
    print(f"wrote {SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
