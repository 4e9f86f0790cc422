"""What each command of `finetune-studio` does, but `serve` (in `cli.py`, with the parser).

Every command works on the server of one state folder (`--data-dir`, default $FINETUNE_STUDIO_HOME or
./.finetune-studio). `run`, `demo` and `open` start that server in the background when none runs, and
say so; it keeps running (training outlives the terminal) until `finetune-studio stop`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
import tomllib
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StudioError

if TYPE_CHECKING:
    from .client import StudioClient
    from .discovery import Server
    from .spec import JobSpec
    from .wire import Job

ACTIVE_STATES = ("queued", "running", "cancelling")
# The server gives its workers up to 120 s (scheduler.CANCEL_GRACE_SECONDS) to save a checkpoint.
STOP_TIMEOUT = 150.0


def default_data_dir() -> Path:
    return Path(os.environ.get("FINETUNE_STUDIO_HOME") or Path.cwd() / ".finetune-studio")


def command(args: argparse.Namespace, line: str) -> str:
    """`finetune-studio <line>` as the user types it for this state folder."""
    where = "" if args.data_dir == default_data_dir().resolve() else f" --data-dir {shlex.quote(str(args.data_dir))}"
    return f"finetune-studio {line}{where}"


def running_server(args: argparse.Namespace) -> Server:
    from .client import read_server_info

    info = read_server_info(args.data_dir)
    if info is None:
        raise StudioError(f"no server is running for {args.data_dir}",
                          hint=f"start one with `{command(args, 'serve')}` (`run`, `demo` and `open` start one too)")
    return info


def started_server(args: argparse.Namespace) -> Server:
    """The running server of the state folder, or a new one started in the background (and said so)."""
    from .client import ensure_server, read_server_info

    info = read_server_info(args.data_dir)
    if info is None:
        info = ensure_server(args.data_dir)
        print(f"started a server for {args.data_dir} (pid {info.pid}); it keeps running in the background until "
              f"`{command(args, 'stop')}`, or until it is idle (serve --idle-timeout)")
    return info


def client_of(info: Server) -> StudioClient:
    from .client import StudioClient

    return StudioClient.from_info(info)


def dashboard_url(info: Server, job_id: str | None = None) -> str:
    return f"{info.url}/?token={info.token}" + (f"#job={job_id}" if job_id else "")


def load_config(path: Path) -> JobSpec:
    """The job spec of a finetune.toml; a path that is no readable UTF-8 file is a one-line error."""
    from .spec import load_spec

    if path.is_dir():
        inside = path / "finetune.toml"
        raise StudioError(f"{path} is a folder, not a TOML file",
                          hint=f"give {inside}" if inside.is_file() else "give the path of a finetune.toml")
    if not path.exists():
        raise StudioError(f"{path}: no such file",
                          hint="give the path of a finetune.toml (`finetune-studio demo` writes an example)")
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise StudioError(f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                          f"{error.start})", hint="save the file as UTF-8") from None
    except OSError as error:
        raise StudioError(f"cannot read {path}: {error.strerror}", hint="check the file's permissions") from None
    except tomllib.TOMLDecodeError as error:
        raise StudioError(f"{path} is not valid TOML: {error}",
                          hint='look at that line: strings are quoted (model = "models/minilm"), '
                               "sections are [data] or [training]") from None
    return load_spec(path)


def run(args: argparse.Namespace) -> int:
    from .follow import follow
    from .spec import check_files

    spec = load_config(Path(args.config))
    check_files(spec)
    info = started_server(args)
    client = client_of(info)
    job = client.submit(spec.model_dump(mode="json"))
    print(f"job {job.id} ({job.name}) submitted; dashboard: {dashboard_url(info, job.id)}")
    final = follow(client, job.id)
    return 0 if final.state == "completed" else 1


def jobs(args: argparse.Namespace) -> int:
    listing = client_of(running_server(args)).jobs()
    if not listing:
        print("no jobs yet: try `finetune-studio demo`")
        return 0
    print_jobs(listing)
    return 0


def print_jobs(listing: list[Job]) -> None:
    print(f"{'ID':<22} {'STATE':<12} {'TASK':<22} {'STEP':>12}  NAME")
    for job in listing:
        step = f"{job.progress.step}/{job.progress.max_steps}" if job.progress.max_steps else "-"
        print(f"{job.id:<22} {job.state:<12} {job.task:<22} {step:>12}  {job.name}")


def demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    code = run_demo(args)
    print(f"open the dashboard again: {command(args, 'open')}")
    print(f"stop the server:          {command(args, 'stop')} (an idle server also stops by itself)")
    return code


def status(args: argparse.Namespace) -> int:
    from .client import read_server_info

    info = read_server_info(args.data_dir)
    if info is None:
        print(f"no server is running for {args.data_dir}; `{command(args, 'serve')}` starts one")
        return 1
    print(f"server {info.url} (pid {info.pid}) for {args.data_dir}")
    active = [job for job in client_of(info).jobs() if job.state in ACTIVE_STATES]
    if not active:
        print("no job is running")
        return 0
    print_jobs(active)
    return 0


def stop(args: argparse.Namespace) -> int:
    from .client import read_server_info

    info = read_server_info(args.data_dir)
    if info is None or info.pid is None:
        print(f"no server is running for {args.data_dir}")
        return 0
    active = [job.id for job in client_of(info).jobs() if job.state in ACTIVE_STATES]
    if active and not args.force:
        raise StudioError(f"{len(active)} job(s) still run ({', '.join(active)}): stopping the server interrupts "
                          "them (they keep their last checkpoint and can be resumed later)",
                          hint=f"`{command(args, 'stop --force')}` stops it anyway; "
                               f"`{command(args, 'resume ID')}` continues a job afterwards")
    # SIGTERM is the server's graceful stop: running workers save a checkpoint and their jobs become
    # `interrupted`, server.json is removed.
    os.kill(info.pid, signal.SIGTERM)
    if active:
        print(f"stopping the server (pid {info.pid}); its jobs save a checkpoint first...")
    deadline = time.monotonic() + STOP_TIMEOUT
    while not process_gone(info.pid):
        if time.monotonic() > deadline:
            raise StudioError(f"the server (pid {info.pid}) did not stop within {STOP_TIMEOUT:.0f} s",
                              hint=f"`kill -9 {info.pid}` ends it at once; its jobs become interrupted")
        time.sleep(0.1)
    print(f"stopped the server of {args.data_dir} (pid {info.pid})")
    for job_id in active:
        print(f"job {job_id} is interrupted: `{command(args, f'resume {job_id}')}` continues it")
    return 0


def process_gone(pid: int) -> bool:
    """Whether `pid` has exited: it no longer exists, or is a zombie that its parent has yet to reap."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # no /proc (macOS): the kill above is the answer
    return state == "Z"


def open_dashboard(args: argparse.Namespace) -> int:
    info = started_server(args)
    if args.job:
        client_of(info).job(args.job)  # an unknown id is an error here, not an empty page
    url = dashboard_url(info, args.job)
    # webbrowser honours $BROWSER (a command that gets the URL), which is also how tests replace it.
    if webbrowser.open(url):
        print(f"opened {url}")
    else:
        print(f"no browser found here; open {url}")
    return 0


def logs(args: argparse.Namespace) -> int:
    from .wire import FINISHED_STATES

    client = client_of(running_server(args))
    last = print_logs(client, args.job, after=0)
    if not args.follow:
        return 0
    # The job is read after the log lines: if it still runs, its final state event comes after them. An
    # earlier attempt's final state (cancelled, then resumed) may come after them too: it is not the end.
    job = client.job(args.job)
    if job.state in FINISHED_STATES:
        print_logs(client, args.job, after=last)
        return 0
    for event in client.stream(args.job, after=last, until_finished=False):
        if event.type == "log":
            print(event.data["text"], flush=True)
        elif (event.type == "state" and event.data["state"] in FINISHED_STATES
              and event.data["attempt"] >= job.attempt):
            return 0
    return 0


def print_logs(client: StudioClient, job_id: str, after: int) -> int:
    """Print the job's log lines after seq `after`, page by page; the last seq printed."""
    page = 1000
    while True:
        lines = client.request("GET", f"/api/jobs/{job_id}/logs", params={"after": after, "limit": page})["lines"]
        for line in lines:
            print(line["text"])
            after = line["seq"]
        if len(lines) < page:
            sys.stdout.flush()  # `logs -f | grep ...` sees the history before the first new line
            return after


def cancel(args: argparse.Namespace) -> int:
    job = client_of(running_server(args)).cancel(args.job)
    print(f"job {job.id} is {job.state}: it stops after the current step and saves a checkpoint; "
          f"`{command(args, f'resume {job.id}')}` continues from it")
    return 0


def resume(args: argparse.Namespace) -> int:
    job = client_of(running_server(args)).resume(args.job)
    print(f"job {job.id} is {job.state} again (attempt {job.attempt}), from its last checkpoint; "
          f"`{command(args, f'logs {job.id} -f')}` follows it, `{command(args, f'open {job.id}')}` shows it")
    return 0


def train(args: argparse.Namespace) -> int:
    """Run a finetune.toml's training in this process, reported as an attached run: what the IDE's Debug
    Fine-tune runs under its debugger, and what any other debugger (pdb, VS Code) can run too. With
    `[debug] break_on`, an anomaly stops the debugger in a frame that holds the batch and the model."""
    from .delivery import ReporterClient
    from .devices import gpu_count
    from .spec import check_files
    from .worker import GracefulStop, train_job

    spec = load_config(Path(args.config))
    check_files(spec)
    info = started_server(args)
    client = client_of(info)
    device = "cuda:0" if gpu_count() else "cpu"
    job = client.open_run({"name": spec.name, "task": spec.task, "pid": os.getpid(), "device": device,
                           "spec": spec.model_dump(mode="json")})
    job_dir = Path(job.output_dir).parent
    print(f"run {job.id} ({job.name}) trains in this process (pid {os.getpid()}); dashboard: "
          f"{dashboard_url(info, job.id)}", flush=True)
    reporter = ReporterClient(info.url, info.token, job.id, 1, job_dir / "spool.jsonl", state_dir=args.data_dir)
    result: dict[str, object] = {"state": "failed", "error": {"type": "interrupted", "message": "stopped"}}
    try:
        result = train_job(spec, job_dir, reporter, 1, GracefulStop())
    finally:
        reporter.emit("end", {k: v for k, v in result.items() if k in ("state", "error")})
        reporter.close()
    error = result.get("error")
    if isinstance(error, dict):
        print(f"error: {error.get('message')}" + (f"; hint: {error['hint']}" if error.get("hint") else ""),
              file=sys.stderr)
    return 0 if result["state"] == "completed" else 1
