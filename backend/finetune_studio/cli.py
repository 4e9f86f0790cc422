"""`finetune-studio serve | run | jobs | demo`."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

from . import __version__
from .errors import StudioError


def default_data_dir() -> Path:
    return Path(os.environ.get("FINETUNE_STUDIO_HOME") or Path.cwd() / ".finetune-studio")


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .server import create_app
    from .settings import Settings

    try:
        settings = Settings(data_dir=args.data_dir, host=args.host, port=args.port, allow_remote=args.allow_remote,
                            **({"token": args.token} if args.token else {}))
    except ValueError as error:
        print(f"finetune-studio serve: {error}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
    url = f"http://{host}:{port}"
    app = create_app(settings, url=url)
    server_json = settings.server_json

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                # Written only once the socket accepts, and whole: written beside it, then renamed, so a
                # client polling for it never reads a half-written file.
                partial = server_json.with_suffix(".json.tmp")
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    json.dump({"url": url, "token": settings.token, "pid": os.getpid(), "version": __version__},
                              handle)
                os.chmod(partial, 0o600)
                os.replace(partial, server_json)
                print(f"Fine-Tune Studio {__version__} is running: {url}/?token={settings.token}", flush=True)

    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, timeout_graceful_shutdown=5)
    try:
        Server(config).run(sockets=[sock])
    finally:
        if server_json.is_file() and json.loads(server_json.read_text()).get("pid") == os.getpid():
            server_json.unlink()
    return 0


def run(args: argparse.Namespace) -> int:
    from .client import StudioClient, ensure_server
    from .follow import follow
    from .spec import check_files, load_spec

    spec = load_spec(Path(args.config))
    check_files(spec)
    info = ensure_server(args.data_dir)
    client = StudioClient.from_info(info)
    job = client.submit(spec.model_dump(mode="json"))
    print(f"job {job.id} ({job.name}) submitted; dashboard: {info.url}/?token={info.token}#job={job.id}")
    final = follow(client, job.id)
    return 0 if final.state == "completed" else 1


def jobs(args: argparse.Namespace) -> int:
    from .client import StudioClient, read_server_info

    info = read_server_info(args.data_dir)
    if info is None:
        print(f"no server is running for {args.data_dir}; start one with `finetune-studio serve`", file=sys.stderr)
        return 1
    listing = StudioClient.from_info(info).jobs()
    if not listing:
        print("no jobs yet: try `finetune-studio demo`")
    print(f"{'ID':<22} {'STATE':<12} {'TASK':<22} {'STEP':>12}  NAME")
    for job in listing:
        step = f"{job.progress.step}/{job.progress.max_steps}" if job.progress.max_steps else "-"
        print(f"{job.id:<22} {job.state:<12} {job.task:<22} {step:>12}  {job.name}")
    return 0


def demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.folder), args.data_dir, quick=args.quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="finetune-studio", description="Fine-tune transformers, watch them live.")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", type=Path, default=None,
                       help="state folder (default: $FINETUNE_STUDIO_HOME or ./.finetune-studio)")
        return p

    p = with_data_dir(commands.add_parser("serve", help="start the server and dashboard"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--token", default=None, help="default: a new random token")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(handler=serve)

    p = with_data_dir(commands.add_parser("run", help="submit a finetune.toml and follow it"))
    p.add_argument("config", help="path of finetune.toml")
    p.set_defaults(handler=run)

    with_data_dir(commands.add_parser("jobs", help="list jobs")).set_defaults(handler=jobs)

    p = with_data_dir(commands.add_parser("demo", help="fine-tune MiniLM on movie-review sentiment, offline"))
    p.add_argument("--folder", default="finetune-studio-demo", help="where to write the data and finetune.toml")
    p.add_argument("--quick", action="store_true", help="a smaller run (for smoke tests)")
    p.set_defaults(handler=demo)

    args = parser.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = default_data_dir()
    args.data_dir = Path(args.data_dir).resolve()
    try:
        result: int = args.handler(args)
        return result
    except StudioError as error:
        print(f"error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

