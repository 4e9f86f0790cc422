"""Discovery (docs/discovery.md): environment, else FINETUNE_STUDIO_HOME, else the nearest
.finetune-studio/server.json upward; a server.json counts only when its process lives and its URL
answers /api/health with that process. And the test suite never finds the user's server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import RunningServer, start_server
from finetune_studio.discovery import NoServer, Server, find_server, read_server_json


def write_server_json(data_dir: Path, url: str, pid: int, token: str = "t" * 20) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "server.json"
    path.write_text(json.dumps({"url": url, "token": token, "pid": pid, "version": "0.1.0"}), encoding="utf-8")
    return path


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def health_server() -> Iterator[tuple[str, dict[str, object]]]:
    """A stand-in that answers GET /api/health with `answer["status"]` and `answer["body"]` (no uvicorn):
    the rule's cases without starting the real server each time."""
    answer: dict[str, object] = {"status": 200, "body": {"status": "ok", "version": "0.1.0", "pid": os.getpid()}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = answer["body"]
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(int(answer["status"]))  # type: ignore[call-overload]
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answer
    httpd.shutdown()
    httpd.server_close()


def test_a_live_server_json_is_found_from_a_subfolder(tmp_path: Path, health_server: tuple[str, dict[str, object]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = health_server
    path = write_server_json(tmp_path / ".finetune-studio", url + "/", os.getpid())
    deeper = tmp_path / "src" / "pkg"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    assert find_server() == Server(url, "t" * 20, os.getpid(), str(path))
    assert read_server_json(tmp_path / ".finetune-studio") == Server(url, "t" * 20, os.getpid(), str(path))


def test_stale_server_json_with_a_dead_pid_is_no_server(tmp_path: Path,
                                                        health_server: tuple[str, dict[str, object]]) -> None:
    url, answer = health_server
    pid = dead_pid()
    answer["body"] = {"status": "ok", "version": "0.1.0", "pid": pid}  # even if its port still answered
    write_server_json(tmp_path / ".finetune-studio", url, pid)
    with pytest.raises(NoServer, match=f"process {pid}\\) is gone.*finetune-studio serve"):
        find_server(tmp_path)
    assert read_server_json(tmp_path / ".finetune-studio") is None


def test_server_json_whose_url_answers_with_another_pid_is_no_server(tmp_path: Path,
                                                                     server: RunningServer) -> None:
    """Regression: a crashed server's server.json whose port now belongs to another live server (another
    folder's, or a test's) sent that folder's captures and runs to the wrong server."""
    # pid: a live process that is not the server (this test's own)
    write_server_json(tmp_path / "other" / ".finetune-studio", server.url, os.getpid(), server.token)
    with pytest.raises(NoServer, match=f"answered for process {server.process.pid}, not {os.getpid()}"):
        find_server(tmp_path / "other")
    # the server's own folder, checked the same way, counts
    assert read_server_json(server.data_dir) == Server(server.url, server.token, server.process.pid,
                                                       str(server.data_dir / "server.json"))


@pytest.mark.parametrize(("status", "body"), [
    (500, {"detail": "boom"}),
    (200, {"status": "ok", "version": "0.1.0"}),  # an older server: no pid to compare
    (200, b"<html>another program</html>"),
    (200, [1, 2]),
])
def test_a_health_answer_without_the_same_pid_is_no_server(tmp_path: Path, status: int, body: object,
                                                           health_server: tuple[str, dict[str, object]]) -> None:
    url, answer = health_server
    answer.update(status=status, body=body)
    write_server_json(tmp_path / ".finetune-studio", url, os.getpid())
    with pytest.raises(NoServer, match=f"is stale: .*/api/health gave no answer naming process {os.getpid()}"):
        find_server(tmp_path)


def test_nothing_listening_and_broken_files_are_no_server(tmp_path: Path) -> None:
    with pytest.raises(NoServer, match=re.escape(f"no .finetune-studio/server.json in {tmp_path} or any folder above")):
        find_server(tmp_path)
    write_server_json(tmp_path / ".finetune-studio", "http://127.0.0.1:9", os.getpid())  # discard port
    with pytest.raises(NoServer, match="gave no answer"):
        find_server(tmp_path)
    for text in ("", "{not json", "[]", '{"url": "http://x", "token": "t"}', '{"url": "u", "token": "t", "pid": 0}'):
        (tmp_path / ".finetune-studio" / "server.json").write_text(text, encoding="utf-8")
        with pytest.raises(NoServer, match="cannot be read|no valid pid"):
            find_server(tmp_path)
        assert read_server_json(tmp_path / ".finetune-studio") is None
    assert read_server_json(tmp_path / "nowhere") is None


def test_the_nearest_server_json_decides_even_when_stale(tmp_path: Path,
                                                         health_server: tuple[str, dict[str, object]]) -> None:
    url, _ = health_server
    write_server_json(tmp_path / ".finetune-studio", url, os.getpid())
    inner = tmp_path / "inner"
    write_server_json(inner / ".finetune-studio", url, dead_pid())
    with pytest.raises(NoServer, match=re.escape(str(inner / ".finetune-studio" / "server.json"))):
        find_server(inner)
    assert find_server(tmp_path).pid == os.getpid()


def test_environment_beats_server_json(tmp_path: Path, health_server: tuple[str, dict[str, object]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = health_server
    write_server_json(tmp_path / ".finetune-studio", url, os.getpid())
    monkeypatch.setenv("FINETUNE_STUDIO_HOME", str(tmp_path / ".finetune-studio"))
    monkeypatch.setenv("FINETUNE_STUDIO_URL", "http://127.0.0.1:7/")
    monkeypatch.setenv("FINETUNE_STUDIO_TOKEN", "env-token")
    # taken as given: the scheduler sets them for its workers, and a down server there is reported by the call
    assert find_server(tmp_path) == Server("http://127.0.0.1:7", "env-token", None, "environment")


@pytest.mark.parametrize("only", ["FINETUNE_STUDIO_URL", "FINETUNE_STUDIO_TOKEN"])
def test_half_of_the_environment_pair_is_an_error(tmp_path: Path, only: str,
                                                  health_server: tuple[str, dict[str, object]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = health_server
    write_server_json(tmp_path / ".finetune-studio", url, os.getpid())  # not used instead
    monkeypatch.setenv(only, "http://127.0.0.1:7")
    with pytest.raises(NoServer, match=f"{only} is set but FINETUNE_STUDIO_(URL|TOKEN) is not"):
        find_server(tmp_path)


def test_home_is_the_only_place_looked_at_and_does_not_walk_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               health_server: tuple[str, dict[str, object]]) -> None:
    url, _ = health_server
    write_server_json(tmp_path / ".finetune-studio", url, os.getpid())
    home = tmp_path / "sub" / ".finetune-studio"
    home.mkdir(parents=True)
    assert find_server(tmp_path / "sub").pid == os.getpid()  # walking up finds the outer one
    monkeypatch.setenv("FINETUNE_STUDIO_HOME", str(home))
    with pytest.raises(NoServer, match=re.escape(f"{home / 'server.json'} (FINETUNE_STUDIO_HOME) does not exist")):
        find_server(tmp_path / "sub")
    with pytest.raises(NoServer):
        find_server(tmp_path)  # nor does the working folder matter any more


PROBE = '''
import json

from transformers import TrainerControl, TrainerState, TrainingArguments

from finetune_studio import StudioCallback, debug


def test_probe(tmp_path):
    result = json.loads(debug.capture([[1.0, 2.0]], name="probe"))
    callback = StudioCallback(name="probe")
    args = TrainingArguments(str(tmp_path / "out"), report_to="none")
    state = TrainerState()
    state.max_steps = 1
    callback.on_train_begin(args, state, TrainerControl())
    state.global_step = 1
    callback.on_log(args, state, TrainerControl(), logs={"loss": 0.5})
    callback.on_train_end(args, state, TrainerControl())
    assert result["id"] is None and "no Fine-Tune Studio server" in result["reason"], result
    assert callback.client.job_id is None
'''


def test_tests_never_reach_the_users_server(tmp_path: Path) -> None:
    """Regression: with a server running in the checkout (as `make demo` leaves it), the test suite found
    its `.finetune-studio/server.json` from the working folder and posted a stray job into it. Here pytest
    runs a probe test from inside a user's project whose server is live, with FINETUNE_STUDIO_HOME
    pointing at it too; this suite's conftest (loaded as a plugin) must keep the probe away from it."""
    project = tmp_path / "checkout"
    project.mkdir()
    users = start_server(project / ".finetune-studio")
    try:
        (project / "test_probe.py").write_text(PROBE, encoding="utf-8")
        tests_dir = str(Path(__file__).parent)
        env = {**os.environ, "FINETUNE_STUDIO_HOME": str(users.data_dir),
               "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))}
        probe = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                                "--basetemp", str(tmp_path / "probe-tmp"), "test_probe.py"],
                               cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert probe.returncode == 0, probe.stdout[-3000:] + probe.stderr[-3000:]
        assert users.client.jobs() == []
        assert users.client.request("GET", "/api/tensors")["tensors"] == []
        assert read_server_json(users.data_dir) is not None  # it was live all along
    finally:
        users.stop()
