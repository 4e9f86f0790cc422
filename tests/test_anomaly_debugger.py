"""`finetune-studio train` under a real debugger (debugpy, driven over the Debug Adapter Protocol as an
IDE drives it): a planted NaN stops the process at the anomalous step in a frame holding the batch and
the model; `debug.capture` of the batch's input ids works there; after continue the run ends as its spec
says (`on_anomaly = "continue"`: the broken batch's update is skipped and training goes on)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from conftest import RunningServer
from test_anomaly import planted_data, poisoned_bert  # noqa: F401 - the fixture is used by name
from test_debugger_capture import CAPTURE, debug_session, evaluate

LAUNCHER = '''\
import pathlib, sys
import debugpy
host, port = debugpy.listen(("127.0.0.1", 0))
pathlib.Path({port_file!r}).write_text(str(port))
debugpy.wait_for_client()
from finetune_studio.cli import main
sys.exit(main(["train", {config!r}, "--data-dir", {data_dir!r}]))
'''


def test_train_stops_in_the_debugger_at_a_planted_nan(server: RunningServer, poisoned_bert: Path,  # noqa: F811
                                                       tmp_path: Path) -> None:
    train, dev, planted_at = planted_data(tmp_path)
    config = tmp_path / "finetune.toml"
    config.write_text(f'''name = "debug-me"
task = "text-classification"
model = "{poisoned_bert}"
[data]
train = "{train}"
eval = "{dev}"
max_length = 32
[training]
epochs = 1
batch_size = 8
learning_rate = 1e-3
logging_steps = 1
eval_strategy = "no"
save_strategy = "no"
[debug]
break_on = ["nan"]
''', encoding="utf-8")
    port_file = tmp_path / "port.txt"
    launcher = LAUNCHER.format(port_file=str(port_file), config=str(config), data_dir=str(server.data_dir))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    with debug_session(launcher, port_file, tmp_path, env) as (dap, attach, process, log):
        dap.request("configurationDone")
        dap.response(attach)

        stopped = dap.event("stopped", timeout=240)
        stopped_at = time.time()
        frames = dap.request("stackTrace", threadId=stopped["body"]["threadId"], startFrame=0, levels=1)
        frame = frames["body"]["stackFrames"][0]
        assert frame["name"] == "stop_here", frame
        scopes = dap.request("scopes", frameId=frame["id"])["body"]["scopes"]
        names = {v["name"] for v in dap.request(
            "variables", variablesReference=scopes[0]["variablesReference"])["body"]["variables"]}
        assert {"inputs", "model", "outputs", "loss", "anomaly"} <= names

        assert evaluate(dap, frame["id"], "anomaly.kind") == "nan"
        rows = json.loads(evaluate(dap, frame["id"], "__import__('json').dumps(anomaly.rows)"))
        assert planted_at in rows
        ids = json.loads(evaluate(dap, frame["id"], f'{CAPTURE}(inputs["input_ids"], name="input_ids")'))
        assert ids["id"] and ids["summary"].startswith("tensor[")
        held = server.client.request("GET", f"/api/tensors/{ids['id']}")
        assert held["name"] == "input_ids"

        # the server already knows: the run's anomaly event arrived before the stop
        run_id = next(j.id for j in server.client.jobs() if j.name == "debug-me")
        anomalies = server.client.request("GET", f"/api/jobs/{run_id}/events", params={"types": "anomaly"})
        assert anomalies["events"] and planted_at in anomalies["events"][0]["data"]["rows"]
        assert anomalies["events"][0]["time"] <= stopped_at
        print(f"anomaly detected -> DAP stopped event: {stopped_at - anomalies['events'][0]['time']:.3f} s")

        dap.request("continue", threadId=stopped["body"]["threadId"])
        while process.poll() is None:  # later batches may hold the planted row again (one epoch: they do not)
            try:
                again = dap.event("stopped", timeout=1)
            except TimeoutError:
                continue
            dap.request("continue", threadId=again["body"]["threadId"])
        assert process.wait(timeout=240) == 0, log.read_text()[-3000:]
        run = server.wait_for(run_id, timeout=30)
        assert run.state == "completed" and run.kind == "attached" and run.spec is not None
        assert run.spec.debug.break_on == ["nan"]
