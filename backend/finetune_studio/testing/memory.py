"""Peak memory of a real worker, for checking the estimate against reality (tests and benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..broker import Broker
from ..jobs import Jobs
from ..spec import JobSpec
from ..store import Store


def worker_peak_rss(spec: JobSpec, state: Path) -> int:
    """Runs the real worker (`python -m finetune_studio.worker JOB_DIR`, no server: the reporter spools)
    and returns its peak resident memory in bytes."""
    state.mkdir(parents=True, exist_ok=True)
    store = Store(state / "studio.db")
    job = Jobs(store, Broker(), state).submit(spec)
    store.close()
    code = ("import resource, sys; from finetune_studio import worker; sys.argv = ['worker', sys.argv[1]]; "
            "code = worker.main(); print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, str(state / "jobs" / job.id)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    peaks = [line for line in done.stdout.splitlines() if line.startswith("PEAK")]
    assert done.returncode == 0 and peaks, done.stdout[-3000:] + done.stderr[-3000:]
    return int(peaks[0].split()[1]) * 1024  # Linux: KiB
