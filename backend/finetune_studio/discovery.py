"""Finding the Fine-Tune Studio server: one rule for every client (StudioCallback, debug.capture, the CLI;
the plugin's `ServerDiscovery.kt` follows the same rule, and docs/discovery.md states it).

1. FINETUNE_STUDIO_URL and FINETUNE_STUDIO_TOKEN both set: that server, taken as given (the scheduler
   sets them for its workers). One without the other is an error.
2. Else, when FINETUNE_STUDIO_HOME is set: `$FINETUNE_STUDIO_HOME/server.json`, and nowhere else.
3. Else: `.finetune-studio/server.json` in the working folder or the nearest parent that has one.

A server.json counts only when it parses, its pid is alive and GET {url}/api/health answers 200 within
2 s with that same pid: a crashed server leaves its file behind, and its port may since belong to
another server (of another folder, or of a test).

Standard library only: `debug` imports this inside the user's process, where importing must stay cheap.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".finetune-studio"
HEALTH_TIMEOUT = 2.0  # seconds; the server is local, a slower answer is not a server we can use
HOW_TO_START = "start one with `finetune-studio serve`, or set FINETUNE_STUDIO_URL and FINETUNE_STUDIO_TOKEN"


@dataclass(frozen=True)
class Server:
    """A live server: where to send and with which token. `pid` is None when the environment named it."""

    url: str
    token: str
    pid: int | None
    source: str  # the server.json it came from, or "environment"


class NoServer(LookupError):
    """No live server by the rule; the message says where it looked and how to start one."""


def find_server(cwd: Path | None = None) -> Server:
    """The server to talk to, by the rule above. Raises NoServer."""
    url, token = os.environ.get("FINETUNE_STUDIO_URL"), os.environ.get("FINETUNE_STUDIO_TOKEN")
    if url and token:
        return Server(url.rstrip("/"), token, None, "environment")
    if url or token:
        present, missing = ("URL", "TOKEN") if url else ("TOKEN", "URL")
        raise NoServer(f"FINETUNE_STUDIO_{present} is set but FINETUNE_STUDIO_{missing} is not: set both, or neither")
    home = os.environ.get("FINETUNE_STUDIO_HOME")
    if home:
        path = Path(home) / "server.json"
    else:
        start = (cwd or Path.cwd()).resolve()
        found = next((folder / STATE_DIR / "server.json" for folder in (start, *start.parents)
                      if (folder / STATE_DIR / "server.json").is_file()), None)
        if found is None:
            raise NoServer(f"no Fine-Tune Studio server: no {STATE_DIR}/server.json in {start} or any folder "
                           f"above it ({HOW_TO_START})")
        path = found
    server, why_not = _check(path)
    if server is None:
        where = " (FINETUNE_STUDIO_HOME)" if home else ""
        raise NoServer(f"no Fine-Tune Studio server: {path}{where} {why_not} ({HOW_TO_START})")
    return server


def read_server_json(data_dir: Path) -> Server | None:
    """The live server of the state folder `data_dir`, or None (no server.json, or a stale one)."""
    return _check(data_dir / "server.json")[0]


def _check(path: Path) -> tuple[Server | None, str]:
    """The server that `path` names if it counts, else None and why not (to follow the path in a message)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        url, token, pid = str(info["url"]).rstrip("/"), str(info["token"]), info["pid"]
    except FileNotFoundError:
        return None, "does not exist"
    except (OSError, ValueError, KeyError, TypeError) as error:
        # half-written (an older server without the atomic rename) or damaged
        return None, f"cannot be read ({type(error).__name__}: {error})"
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None, f"has no valid pid ({pid!r})"
    if not _alive(pid):
        return None, f"is stale: its server (process {pid}) is gone"
    answered = _health_pid(url)
    if answered is None:
        return None, f"is stale: {url}/api/health gave no answer naming process {pid}"
    if answered != pid:
        return None, f"is stale: {url}/api/health answered for process {answered}, not {pid}"
    return Server(url, token, pid, str(path)), ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _health_pid(url: str) -> int | None:
    """The pid in the 200 answer of `url`/api/health, or None. Proxies are bypassed: the server is local."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/api/health", timeout=HEALTH_TIMEOUT) as response:
            if response.status != 200:
                return None
            pid = json.loads(response.read()).get("pid")
    except (OSError, http.client.HTTPException, ValueError, AttributeError):
        # URLError, HTTPError and timeouts are OSErrors; HTTPException: something that does not speak HTTP;
        # ValueError: a malformed URL or a body that is not JSON; AttributeError: JSON that is not an object
        return None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None
