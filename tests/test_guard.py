"""The door (`guard.py`) against the real server: the token before any body byte, bodies capped per route
without buffering, state changes only from the server's own pages with JSON."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from conftest import RunningServer, start_server

MiB = 1 << 20


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("door") / ".finetune-studio")
    yield running
    running.stop()


def _chunks(total: int, size: int = MiB) -> Iterator[bytes]:
    block = b"x" * size
    for _ in range(total // size):
        yield block


def _post(server: RunningServer, path: str, content: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    return httpx.post(server.url + path, content=content, headers=headers, timeout=120, trust_env=False)


def _server_log(server: RunningServer) -> str:
    return Path(f"{server.data_dir}-server.log").read_text(errors="replace")


class PeakRss:
    """The largest resident set of a process while the block runs, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.before = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_unauthenticated_600_mb_body_is_refused_without_buffering(door: RunningServer) -> None:
    """Regression: the body was read before the token was checked; a 600 MB text/plain POST without a
    token answered 401 after the server peaked at 1.56 GB."""
    for declared in (False, True):  # chunked, then with Content-Length
        headers = {"Content-Type": "text/plain"} | ({"Content-Length": str(600 * MiB)} if declared else {})
        with PeakRss(door.process.pid) as rss:
            response = _post(door, "/api/tensors", _chunks(600 * MiB), **headers)
        assert response.status_code == 401, response.text
        assert response.json()["type"] == "unauthorized"
        grown = (rss.peak - rss.before) / MiB
        print(f"600 MB unauthenticated body ({'declared' if declared else 'chunked'}): server RSS "
              f"{rss.before / MiB:.0f} -> peak {rss.peak / MiB:.0f} MiB")
        assert grown < 50, f"the server grew by {grown:.0f} MiB while refusing the body"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("path", "size"), [("/api/runs", 2 * MiB), ("/api/tensors", 40 * MiB),
                                            ("/api/jobs/nope/events", 20 * MiB)])
def test_body_over_the_route_cap_is_413(door: RunningServer, path: str, size: int, declared: bool) -> None:
    """Caps per route (1 MiB, captures 32 MiB, reporter batches 16 MiB), answered 413 as the cap is
    passed, whether the length is declared or the body comes chunked; the server logs no error for it."""
    headers = {"Authorization": f"Bearer {door.token}", "Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(size)
    with PeakRss(door.process.pid) as rss:
        response = _post(door, path, _chunks(size), **headers)
    assert response.status_code == 413, response.text
    assert response.json()["type"] == "too_large"
    assert rss.peak - rss.before < 40 * MiB
    assert door.client.request("GET", "/api/jobs") == {"jobs": []}  # and the server goes on
    assert "Traceback" not in _server_log(door)


def test_cookie_only_text_post_from_another_local_port_is_refused(door: RunningServer) -> None:
    """Regression (CSRF): a page on http://127.0.0.1:8888 posted text/plain to /api/tensors with the
    dashboard's cookie and got 201."""
    cookie = f"fts_token={door.token}"
    forged = _post(door, "/api/tensors", b'{"name": "x"}', Cookie=cookie, Origin="http://127.0.0.1:8888",
                   **{"Content-Type": "text/plain"})
    assert forged.status_code == 403 and forged.json()["type"] == "forbidden_origin"
    same_site = _post(door, "/api/runs", b"{}", Cookie=cookie, **{"Sec-Fetch-Site": "same-site",
                                                                 "Content-Type": "application/json"})
    assert same_site.status_code == 403
    no_origin_text = _post(door, "/api/runs", b"{}", Cookie=cookie, **{"Content-Type": "text/plain"})
    assert no_origin_text.status_code == 415
    own_page = _post(door, "/api/runs", b'{"name": "from the dashboard"}', Cookie=cookie,
                     Origin=door.url, **{"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"})
    assert own_page.status_code == 201, own_page.text


def test_token_only_as_bearer_or_cookie(door: RunningServer) -> None:
    """Regression: `Authorization: <token>` without `Bearer` was accepted."""
    def status(**headers: str) -> int:
        return httpx.get(door.url + "/api/jobs", headers=headers, trust_env=False).status_code

    assert status(Authorization=door.token) == 401
    assert status(Authorization=f"Basic {door.token}") == 401
    assert status(Authorization=f"Bearer {door.token}x") == 401
    assert status(Authorization=f"Bearer {door.token}", Cookie="fts_token=wrong") == 200
    assert status(Cookie=f"fts_token={door.token}") == 200
    assert status(Authorization="Bearer wrong", Cookie=f"fts_token={door.token}") == 401
    assert httpx.get(f"{door.url}/api/jobs?token={door.token}", trust_env=False).status_code == 401
