"""Runs every `benchmarks/bench_*.py` in turn, each in its own process with its default arguments (`make
bench`). Each prints its table and writes `benchmarks/results/<name>.json`; this ends with how long each
took and exits non-zero when one failed.

    .venv/bin/python benchmarks/run_all.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    outcomes = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name}", flush=True)
        started = time.time()
        code = subprocess.run([sys.executable, str(script)], env=env).returncode
        outcomes.append((script.name, code, time.time() - started))
    print("\n| benchmark | exit | seconds |\n| --- | ---: | ---: |")
    for name, code, seconds in outcomes:
        print(f"| {name} | {code} | {seconds:.0f} |")
    return 1 if any(code for _, code, _ in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
