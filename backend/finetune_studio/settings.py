"""Server settings: built once by the CLI (or a test) and handed to `create_app`; no globals."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _megabytes(variable: str, default: int) -> int:
    """An environment variable holding megabytes, in bytes; a bad value fails the start naming it."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default << 20
    try:
        return int(float(raw) * (1 << 20))
    except (ValueError, OverflowError):
        raise ValueError(f"{variable}={raw!r} is not a number of megabytes (default {default})") from None


@dataclass
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    allow_remote: bool = False
    max_body_bytes: int = 1 << 20  # a request body, unless a route below says otherwise
    max_events_bytes: int = 16 << 20  # a reporter's batch (POST /api/jobs/{id}/events)
    max_capture_bytes: int = 32 << 20  # one captured tensor (POST /api/tensors); debug.capture stays far below
    idle_timeout: float = 1800.0  # seconds without a running job or a client before the server stops; 0: never
    # all captured tensors together; the oldest go first when a new one passes it
    capture_budget_bytes: int = field(default_factory=lambda: _megabytes("FINETUNE_STUDIO_CAPTURE_BUDGET_MB", 2048))

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if not self.allow_remote and not is_loopback(self.host):
            raise ValueError(f"host {self.host!r} is not a loopback address: the server would be reachable "
                             "from other machines. Use 127.0.0.1, or pass --allow-remote if you mean it")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range: use 0 (any free port) to 65535")
        if not self.idle_timeout >= 0:
            raise ValueError(f"idle timeout {self.idle_timeout} is negative: give seconds, or 0 to never stop when "
                             "idle")
        if self.capture_budget_bytes < 1 << 20:
            raise ValueError(f"capture budget {self.capture_budget_bytes} bytes is below 1 MiB: give "
                             "FINETUNE_STUDIO_CAPTURE_BUDGET_MB as a number of megabytes (default 2048)")
        if len(self.token) < 16:
            raise ValueError("token is shorter than 16 characters: use a longer random token or omit it")

    @property
    def project_dir(self) -> Path:
        """Relative paths of API submissions resolve here (the folder that holds .finetune-studio)."""
        return self.data_dir.parent

    @property
    def server_json(self) -> Path:
        return self.data_dir / "server.json"

    def body_limit(self, path: str) -> int:
        if path == "/api/tensors":
            return self.max_capture_bytes
        if path.startswith("/api/jobs/") and path.endswith("/events"):
            return self.max_events_bytes
        return self.max_body_bytes
