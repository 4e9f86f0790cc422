"""`finetune-studio`: the parser, the error boundary and `serve`; the other commands are in `commands.py`.

A user's mistake (a bad path or TOML, an unknown job, no server) ends as one line `error: ...; hint: ...`
and a non-zero exit code, never a traceback; tracebacks are kept for bugs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

import httpx

from . import __version__, commands
from .commands import default_data_dir
from .errors import ApiError, StudioError
from .follow import error_line


def serve(args: argparse.Namespace) -> int:
    """Lock the state folder, listen, write server.json; until a signal, or until idle (`idle.py`)."""
    import asyncio

    import uvicorn

    from .idle import Activity, watch
    from .lock import FolderInUse, hold
    from .server import create_app
    from .settings import Settings

    try:
        settings = Settings(data_dir=args.data_dir, host=args.host, port=args.port, allow_remote=args.allow_remote,
                            idle_timeout=args.idle_timeout, **({"token": args.token} if args.token else {}))
    except ValueError as error:
        print(f"finetune-studio serve: {error}", file=sys.stderr)
        return 2
    try:
        lock = hold(settings.data_dir)  # before anything else: a refused server touches nothing
    except FolderInUse as error:
        print(f"finetune-studio serve: {error}", file=sys.stderr)
        return 1
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say so, and with
    # Nagle on every reused connection waited ~40 ms for its delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
    url = f"http://{host}:{port}"
    app = create_app(settings, url=url)
    activity = Activity(app)
    server_json = settings.server_json

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.started:
                return
            # Written only once the socket accepts, and whole: written beside it, then renamed, so a
            # client polling for it never reads a half-written file.
            partial = server_json.with_suffix(".json.tmp")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"url": url, "token": settings.token, "pid": os.getpid(), "version": __version__}, handle)
            os.chmod(partial, 0o600)
            os.replace(partial, server_json)
            # The token opens the dashboard: shown on a terminal only, never written to a log file.
            where = f"{url}/?token={settings.token}" if sys.stdout.isatty() else f"{url} (token in {server_json})"
            print(f"Fine-Tune Studio {__version__} is running: {where}", flush=True)
            if settings.idle_timeout:
                self.idle_watch = asyncio.create_task(watch(activity, app.state.scheduler.busy,
                                                            settings.idle_timeout, self.stop_when_idle))

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # First: clients stop finding this server while its workers save their checkpoints. Here, not
            # after run(): uvicorn re-raises SIGTERM/SIGINT once it has shut down, ending the process.
            if server_json.is_file() and json.loads(server_json.read_text()).get("pid") == os.getpid():
                server_json.unlink()
            await super().shutdown(sockets)

        def stop_when_idle(self) -> None:
            print(f"Fine-Tune Studio: no job ran and no client came for {settings.idle_timeout:.0f} s: stopping "
                  "(serve --idle-timeout)", flush=True)
            self.should_exit = True

    config = uvicorn.Config(activity, log_level=args.log_level, access_log=False, timeout_graceful_shutdown=5,
                            lifespan="on")
    try:
        Server(config).run(sockets=[sock])
    finally:
        os.close(lock)  # the kernel drops it too when the process ends
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="finetune-studio", description="Fine-tune transformers, watch them live.")
    parser.add_argument("--version", action="version", version=__version__)
    subcommands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: object, help: str) -> argparse.ArgumentParser:
        p = subcommands.add_parser(name, help=help)
        p.add_argument("--data-dir", type=Path, default=None,
                       help="state folder (default: $FINETUNE_STUDIO_HOME or ./.finetune-studio)")
        p.set_defaults(handler=handler)
        return p

    p = add("serve", serve, "start the server and dashboard")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--token", default=None, help="default: a new random token")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--log-level", default="warning")
    p.add_argument("--idle-timeout", type=float, default=1800, metavar="SECONDS",
                   help="stop when no job ran and no client came for this long (default 1800; 0: never)")

    add("run", commands.run, "submit a finetune.toml and follow it").add_argument(
        "config", help="path of finetune.toml")

    add("train", commands.train, "run a finetune.toml's training in this process (for a debugger), reported "
        "as an attached run").add_argument("config", help="path of finetune.toml")

    p = add("demo", commands.demo, "fine-tune MiniLM on movie-review sentiment, offline")
    p.add_argument("--folder", default="finetune-studio-demo", help="where to write the data and finetune.toml")
    p.add_argument("--quick", action="store_true", help="a smaller run (for smoke tests)")

    add("status", commands.status, "the server's URL and pid, and the jobs that run")
    add("stop", commands.stop, "stop the server gracefully (running jobs become interrupted, resumable)").add_argument(
        "--force", action="store_true", help="stop even while jobs run")
    add("open", commands.open_dashboard, "open the dashboard in the browser").add_argument(
        "job", nargs="?", default=None, help="a job to show (default: the job list)")
    add("jobs", commands.jobs, "list jobs")
    p = add("logs", commands.logs, "print a job's log")
    p.add_argument("job")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the job ends")
    add("cancel", commands.cancel, "stop a job after its current step, keeping a checkpoint").add_argument("job")
    add("resume", commands.resume, "continue a stopped or failed job from its last checkpoint").add_argument("job")

    args = parser.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = default_data_dir()
    args.data_dir = Path(args.data_dir).resolve()
    try:
        result: int = args.handler(args)
        return result
    except StudioError as error:
        if isinstance(error, ApiError) and error.status == 404:  # the only lookups by id are of jobs
            error.hint = f"`{commands.command(args, 'jobs')}` lists the jobs of this server"
        print(error_line(error.message, error.hint), file=sys.stderr)
        return 1
    except httpx.TransportError as error:
        print(error_line(f"lost the connection to the server ({str(error) or type(error).__name__})",
                         f"`{commands.command(args, 'status')}` says whether it runs; its log is "
                         f"{args.data_dir / 'server.log'}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
