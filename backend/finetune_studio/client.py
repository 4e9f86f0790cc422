"""A small HTTP client of the API, for the CLI and the tests: calls, and a job's SSE stream that resumes
with Last-Event-ID after a drop. It also finds a live server through `server.json` or starts one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from .discovery import Server, read_server_json
from .errors import ApiError, StudioError
from .wire import FINISHED_STATES, Job, StreamEvent


class StudioClient:
    def __init__(self, url: str, token: str, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=timeout, trust_env=False)

    @classmethod
    def from_info(cls, info: Server) -> StudioClient:
        return cls(info.url, info.token)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except json.JSONDecodeError:
                body = {"detail": response.text}
            raise ApiError(response.status_code, body)
        return response.json() if response.content else None

    def submit(self, spec: dict[str, Any]) -> Job:
        return Job.model_validate(self.request("POST", "/api/jobs", json=spec))

    def open_run(self, run: dict[str, Any]) -> Job:
        """An attached run (`RunCreate`)."""
        return Job.model_validate(self.request("POST", "/api/runs", json=run))

    def job(self, job_id: str) -> Job:
        return Job.model_validate(self.request("GET", f"/api/jobs/{job_id}"))

    def jobs(self) -> list[Job]:
        return [Job.model_validate(j) for j in self.request("GET", "/api/jobs")["jobs"]]

    def cancel(self, job_id: str) -> Job:
        return Job.model_validate(self.request("POST", f"/api/jobs/{job_id}/cancel"))

    def resume(self, job_id: str) -> Job:
        return Job.model_validate(self.request("POST", f"/api/jobs/{job_id}/resume"))

    def metrics(self, job_id: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", f"/api/jobs/{job_id}/metrics", params=params)  # type: ignore[no-any-return]

    def stream(self, job_id: str, after: int = 0, until_finished: bool = True,
               retries: int = 30) -> Iterator[StreamEvent]:
        """The job's events from `after` on; reconnects with Last-Event-ID when the connection drops.
        Ends after the job's final `state` event when `until_finished`."""
        last = after
        failures = 0
        while True:
            try:
                with self.http.stream("GET", f"/api/jobs/{job_id}/stream",
                                      headers={"Last-Event-ID": str(last)}, timeout=httpx.Timeout(30, read=60)) as r:
                    if r.status_code >= 400:
                        r.read()
                        raise ApiError(r.status_code, r.json())
                    for event in parse_sse(r.iter_lines()):
                        failures = 0
                        last = event.seq
                        yield event
                        if until_finished and event.type == "state" and event.data.get("state") in FINISHED_STATES:
                            return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                failures += 1
                if failures > retries:
                    raise
                time.sleep(min(5.0, 0.2 * 2 ** failures))

    def close(self) -> None:
        self.http.close()


def parse_sse(lines: Iterator[str]) -> Iterator[StreamEvent]:
    """Events of a text/event-stream whose data is a StreamEvent's JSON; comments (heartbeats) skipped."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield StreamEvent.model_validate_json("\n".join(data))
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def read_server_info(data_dir: Path) -> Server | None:
    """The live server of the state folder `data_dir` (checked as `discovery.py` checks), or None."""
    return read_server_json(data_dir)


def ensure_server(data_dir: Path, timeout: float = 60) -> Server:
    """The live server of `data_dir`, started in the background when there is none."""
    info = read_server_info(data_dir)
    if info is not None:
        return info
    data_dir.mkdir(parents=True, exist_ok=True)
    # Its own session: closing the terminal (or killing this process) leaves the server and its jobs running.
    # Private like server.json: a log is no place for secrets, but it may name the user's data.
    log = os.open(data_dir / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(log, 0o600)
        subprocess.Popen([sys.executable, "-m", "finetune_studio", "serve", "--data-dir", str(data_dir)],
                         stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                         env=dict(os.environ))
    finally:
        os.close(log)
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = read_server_info(data_dir)
        if info is not None:
            return info
        time.sleep(0.2)
    raise StudioError(f"the server did not start within {timeout:.0f} s",
                      hint=f"see {data_dir / 'server.log'}")
