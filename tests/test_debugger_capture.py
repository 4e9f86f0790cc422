"""The IDE's path, for real: a script runs under debugpy and stops at a breakpoint; a Debug Adapter
Protocol client (raw socket, Content-Length framing, as an IDE speaks it) evaluates `capture(...)` in the
paused frame; the returned string parses and the real server holds the capture."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import RunningServer

SCRIPT = '''\
import torch
from transformers import AutoModel, AutoTokenizer

model_dir = {model!r}
model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
tokenizer = AutoTokenizer.from_pretrained(model_dir)
batch = tokenizer("a wonderful moving film", return_tensors="pt")
with torch.no_grad():
    outputs = model(**batch, output_attentions=True)
t = torch.linspace(-1, 1, 12).reshape(3, 4)
print("at the breakpoint", flush=True)  # BREAK
'''

# the user's script runs under debugpy listening on a free port, which the launcher writes to a file
# (not stdout: debugpy's adapter process inherits stdout and outlives the script until disconnect)
LAUNCHER = '''\
import pathlib, runpy
import debugpy
host, port = debugpy.listen(("127.0.0.1", 0))
pathlib.Path({port_file!r}).write_text(str(port))
debugpy.wait_for_client()
runpy.run_path({script!r}, run_name="__main__")
'''


CAPTURE = '__import__("finetune_studio.debug").debug.capture'  # what the IDE evaluates (DESIGN.md step 8)


class DapClient:
    """The requests an IDE sends, one at a time; events are kept until asked for."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buffer = b""
        self.seq = 0
        self.events: list[dict[str, Any]] = []
        self.responses: dict[int, dict[str, Any]] = {}

    def send(self, command: str, **arguments: Any) -> int:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command, "arguments": arguments})
        data = body.encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        return self.seq

    def _read(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        header, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        length = int(next(line.split(b":")[1] for line in header.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        message: dict[str, Any] = json.loads(body)
        if message["type"] == "event":
            self.events.append(message)
        elif message["type"] == "response":
            self.responses[message["request_seq"]] = message
        return message

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the debug adapter closed the connection")
        self.buffer += chunk

    def response(self, seq: int, timeout: float = 120) -> dict[str, Any]:
        deadline = time.time() + timeout
        while seq not in self.responses:
            if time.time() > deadline:
                raise TimeoutError(f"no response to request {seq}")
            self._read()
        answer = self.responses.pop(seq)
        assert answer["success"], answer
        return answer

    def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        return self.response(self.send(command, **arguments))

    def event(self, name: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.time() + timeout
        while True:
            for event in self.events:
                if event["event"] == name:
                    self.events.remove(event)
                    return event
            if time.time() > deadline:
                raise TimeoutError(f"no {name!r} event; got {[e['event'] for e in self.events]}")
            self._read()

    def close(self) -> None:
        self.sock.close()


def evaluate(dap: DapClient, frame_id: int, expression: str) -> str:
    answer = dap.request("evaluate", expression=expression, frameId=frame_id, context="repl")
    # the adapter shows values as repr(); a str comes back quoted
    return str(ast.literal_eval(answer["body"]["result"]))


@contextmanager
def debug_session(launcher: str, port_file: Path, tmp_path: Path,
                  env: dict[str, str]) -> Iterator[tuple[DapClient, int, subprocess.Popen[bytes], Path]]:
    """Runs the `launcher` source (which listens with debugpy and writes its port to `port_file`) and
    attaches as an IDE does. Yields the client, the attach request's seq (answered once the caller has
    sent configurationDone), the process and its log; kills the process if it is still running after."""
    script = tmp_path / "launch.py"
    script.write_text(launcher)
    log = tmp_path / "debuggee.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-Xfrozen_modules=off", str(script)], stdout=out,
                                   stderr=subprocess.STDOUT, env={**env, "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
                                   cwd=tmp_path)
    dap = None
    try:
        deadline = time.time() + 60
        while not port_file.is_file() or not port_file.read_text():
            assert process.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.05)
        dap = DapClient(int(port_file.read_text()))
        dap.request("initialize", clientID="fine-tune-studio-test", adapterID="debugpy", pathFormat="path",
                    linesStartAt1=True, columnsStartAt1=True)
        attach = dap.send("attach", justMyCode=False)
        dap.event("initialized")
        yield dap, attach, process, log
    finally:
        if dap is not None:
            dap.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def test_capture_from_a_real_debugger_session(server: RunningServer, tiny_bert: Path, tmp_path: Path) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT.format(model=str(tiny_bert)))
    port_file = tmp_path / "port.txt"
    launcher = LAUNCHER.format(script=str(script), port_file=str(port_file))
    break_line = next(i for i, line in enumerate(SCRIPT.splitlines(), 1) if "# BREAK" in line)
    env = dict(os.environ, FINETUNE_STUDIO_HOME=str(server.data_dir), HF_HUB_OFFLINE="1")
    with debug_session(launcher, port_file, tmp_path, env) as (dap, attach, process, log):
        breakpoints = dap.request("setBreakpoints", source={"path": str(script)},
                                  breakpoints=[{"line": break_line}])
        assert breakpoints["body"]["breakpoints"][0]["verified"]
        dap.request("configurationDone")
        dap.response(attach)
        stopped = dap.event("stopped", timeout=180)
        assert stopped["body"]["reason"] == "breakpoint"
        frames = dap.request("stackTrace", threadId=stopped["body"]["threadId"], startFrame=0, levels=1)
        frame = frames["body"]["stackFrames"][0]
        assert frame["line"] == break_line

        tensor = json.loads(evaluate(dap, frame["id"], f'{CAPTURE}(t, name="t")'))
        assert tensor["summary"].startswith("tensor[3, 4] float32 cpu")
        assert "min=-1 max=1" in tensor["summary"]
        assert tensor["url"] == f"{server.url}/#tensor={tensor['id']}"

        attention = json.loads(evaluate(
            dap, frame["id"],
            f'{CAPTURE}(outputs.attentions, name="outputs.attentions", '
            'tokenizer=tokenizer, input_ids=batch["input_ids"])'))
        assert attention["id"], attention

        held = {t["id"]: t for t in server.client.request("GET", "/api/tensors")["tensors"]}
        assert held[tensor["id"]]["name"] == "t" and held[tensor["id"]]["kind"] == "tensor"
        assert held[attention["id"]]["kind"] == "attention"
        detail = server.client.request("GET", f"/api/tensors/{attention['id']}")
        assert detail["view"]["layers"] == 2 and detail["view"]["key_labels"][0] == "[CLS]"

        dap.request("continue", threadId=stopped["body"]["threadId"])
        assert process.wait(timeout=120) == 0
        assert "at the breakpoint" in log.read_text()
