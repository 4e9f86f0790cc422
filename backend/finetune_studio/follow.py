"""Following a job in the terminal: a progress bar with step, loss and ETA, then the outcome."""

from __future__ import annotations

import sys

from tqdm import tqdm

from .client import StudioClient
from .wire import FINISHED_STATES, Job


def follow(client: StudioClient, job_id: str, show_logs: bool = False) -> Job:
    """Show the job's progress until it ends; Ctrl+C cancels it (its checkpoint is kept)."""
    bar = tqdm(total=None, unit="step", dynamic_ncols=True, file=sys.stderr, desc=job_id)
    loss: float | None = None
    evaluation: dict[str, float] = {}
    try:
        for event in client.stream(job_id):
            data = event.data
            if event.type == "progress" and data.get("max_steps"):
                bar.total = data["max_steps"]
                bar.n = data["step"]
                postfix = {"epoch": f"{data.get('epoch', 0):.2f}"}
                if loss is not None:
                    postfix["loss"] = f"{loss:.4f}"
                if data.get("samples_per_second"):
                    postfix["samples/s"] = f"{data['samples_per_second']:.1f}"
                bar.set_postfix(postfix, refresh=False)
                bar.refresh()
            elif event.type == "metric":
                loss = data["values"].get("train/loss", loss)
            elif event.type == "eval":
                evaluation = {k: v for k, v in data["values"].items() if isinstance(v, float)}
                bar.write("eval @ step {}: {}".format(data["step"], ", ".join(
                    f"{k.removeprefix('eval/')}={v:.4f}" for k, v in evaluation.items())))
            elif event.type == "log" and (show_logs or data.get("stream") == "stderr"):
                bar.write(data["text"])
            elif event.type == "state":
                bar.write(f"job {job_id}: {data['state']}")
    except KeyboardInterrupt:
        bar.write("cancelling (a checkpoint is saved; `Resume` continues from it)...")
        client.cancel(job_id)
        for event in client.stream(job_id, after=0):
            if event.type == "state" and event.data["state"] in FINISHED_STATES:
                break
    finally:
        bar.close()
    job = client.job(job_id)
    if job.error:
        print(f"error ({job.error.type}): {job.error.message}", file=sys.stderr)
        if job.error.hint:
            print(f"hint: {job.error.hint}", file=sys.stderr)
    return job
