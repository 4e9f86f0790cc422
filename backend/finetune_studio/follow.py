"""Following a job in the terminal: one progress bar with step, loss and ETA, then the outcome.

The worker's own output (library load reports, Python warnings, the Trainer's log lines) stays in the
job's log: the dashboard's Logs tab and `finetune-studio logs ID` show it. Above the bar go only the
evaluations, state changes and the warnings meant for the user (lines starting with `warning: `).
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from .client import StudioClient
from .wire import FINISHED_STATES, Job

# The prefix that the worker and the tasks give to warnings about the user's data or settings
# (e.g. tasks/causal_lm.py on examples left out); anything else on the worker's streams is log only.
USER_WARNING = "warning: "


def error_line(message: str, hint: str | None = None) -> str:
    """How the CLI says what went wrong: one line, with the fix when there is one."""
    return " ".join(f"error: {message}".splitlines()) + (f"; hint: {hint}" if hint else "")


def follow(client: StudioClient, job_id: str) -> Job:
    """Show the job's progress until it ends; Ctrl+C cancels it (its checkpoint is kept)."""
    bar = tqdm(total=None, unit="step", dynamic_ncols=True, file=sys.stderr, desc=job_id)
    loss: float | None = None
    warned: set[str] = set()
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
                values = {k: v for k, v in data["values"].items() if isinstance(v, float)}
                bar.write("eval @ step {}: {}".format(data["step"], ", ".join(
                    f"{k.removeprefix('eval/')}={v:.4f}" for k, v in values.items())))
            elif event.type == "log" and data["text"].startswith(USER_WARNING) and data["text"] not in warned:
                warned.add(data["text"])
                bar.write(data["text"], file=sys.stderr)
            elif event.type == "state":
                bar.write(f"job {job_id}: {data['state']}")
    except KeyboardInterrupt:
        bar.write(f"cancelling job {job_id}: a checkpoint is saved, `finetune-studio resume {job_id}` continues "
                  "from it...")
        client.cancel(job_id)
        for event in client.stream(job_id, after=0):
            if event.type == "state" and event.data["state"] in FINISHED_STATES:
                break
    finally:
        bar.close()
    job = client.job(job_id)
    if job.error:
        lines = [line.strip() for line in job.error.message.splitlines() if line.strip()] or [job.error.type]
        # A crash's message ends with the worker's last stderr lines: the terminal gets the first and last.
        message = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]} (`finetune-studio logs {job_id}`)"
        print(error_line(f"{message} ({job.error.type})", job.error.hint), file=sys.stderr)
    return job
