"""debug.capture and debug.attention in-process: without a server, and against the real server."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import RunningServer
from finetune_studio import debug


def test_no_server_returns_summary_and_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = json.loads(debug.capture(torch.ones(2, 3), name="t"))
    assert result["id"] is None and result["url"] is None
    assert result["summary"].startswith("tensor[2, 3] float32 cpu")
    assert ".finetune-studio/server.json" in result["reason"]


def test_dead_server_is_a_reason_not_an_exception(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("FINETUNE_STUDIO_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("FINETUNE_STUDIO_TOKEN", "x" * 20)
    result = json.loads(debug.capture(torch.zeros(3)))
    assert result["id"] is None and "no answer from the server" in result["reason"]
    assert "all zeros" in result["summary"]


def test_unreadable_object_is_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = json.loads(debug.capture(object()))
    assert result["summary"] is None and "TypeError: cannot summarise a builtins.object" in result["reason"]


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = ("import sys, finetune_studio.debug; "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'httpx', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def get(server: RunningServer, path: str) -> Any:
    return server.client.request("GET", path)


def decode(array: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(array["data"]), "<f4").reshape(array["shape"])


def test_capture_reaches_the_server_found_upward(server: RunningServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    deeper = server.data_dir.parent / "src" / "pkg"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    x[0, 0, 0] = float("nan")
    result = json.loads(debug.capture(x, name="x"))
    assert result["url"] == f"{server.url}/#tensor={result['id']}"
    listed = get(server, "/api/tensors")["tensors"]
    assert [t["id"] for t in listed] == [result["id"]]
    detail = get(server, f"/api/tensors/{result['id']}")
    assert detail["kind"] == "tensor" and detail["summary"]["nan"] == 1 and detail["summary"]["min"] == 1
    preview = decode(detail["arrays"]["preview"])
    assert np.isnan(preview[0, 0, 0]) and np.array_equal(preview[1], x[1].numpy())
    assert (server.data_dir / "tensors" / f"{result['id']}.safetensors").is_file()


def test_capture_through_environment_variables(server: RunningServer, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    monkeypatch.setenv("FINETUNE_STUDIO_URL", server.url)
    monkeypatch.setenv("FINETUNE_STUDIO_TOKEN", server.token)
    assert json.loads(debug.capture(np.eye(3), name="eye"))["id"]
    monkeypatch.delenv("FINETUNE_STUDIO_URL")
    monkeypatch.delenv("FINETUNE_STUDIO_TOKEN")
    monkeypatch.setenv("FINETUNE_STUDIO_HOME", str(server.data_dir))
    assert json.loads(debug.capture([[1, 2], [3, 4]], name="list"))["id"]
    assert len(get(server, "/api/tensors")["tensors"]) == 2


def test_wrong_token_is_a_reason(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINETUNE_STUDIO_URL", server.url)
    monkeypatch.setenv("FINETUNE_STUDIO_TOKEN", "wrong-token-wrong-token")
    result = json.loads(debug.capture(torch.ones(2)))
    assert result["id"] is None and "answered 401" in result["reason"]


def test_large_tensor_is_pooled_with_a_full_resolution_slice(server: RunningServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINETUNE_STUDIO_HOME", str(server.data_dir))
    x = torch.randn(6, 600, 700)
    result = json.loads(debug.capture(x, name="big"))
    detail = get(server, f"/api/tensors/{result['id']}")
    view = detail["view"]
    assert np.prod(view["preview_shape"]) <= debug.PREVIEW and view["pool"][0] == 1
    assert view["slice"] == {"dims": [1, 2], "index": [0], "pool": [2, 2]}
    matrix = decode(detail["arrays"]["slice"])
    assert matrix.shape == (300, 350)
    assert matrix[0, 0] == pytest.approx(float(x[0, :2, :2].mean()), abs=1e-6)


def test_over_the_cap_is_413_with_a_hint(server: RunningServer) -> None:
    payload = debug.build_payload(torch.ones(3), "big")
    payload["arrays"]["pad"] = {"dtype": "float32", "shape": [9_000_000],
                                "data": base64.b64encode(bytes(36_000_000)).decode()}
    response = server.client.http.post("/api/tensors", json=payload)
    status, body = response.status_code, response.json()
    assert status == 413 and body["type"] == "too_large" and "32 MiB" in body["detail"] and body["hint"]


def test_bad_array_is_refused(server: RunningServer) -> None:
    import urllib.error

    payload = debug.build_payload(torch.ones(3), "bad")
    payload["arrays"]["preview"]["shape"] = [4]
    with pytest.raises(urllib.error.HTTPError) as caught:
        debug.post(server.url, server.token, payload)
    assert caught.value.code == 400 and "needs 16" in caught.value.read().decode()


def test_attention_of_a_real_model(server: RunningServer, tiny_bert: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """debug.attention switches an SDPA model to eager for one pass and restores mode and kernel."""
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("FINETUNE_STUDIO_HOME", str(server.data_dir))
    model = AutoModel.from_pretrained(tiny_bert, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model.train()
    result = json.loads(debug.attention(model, tokenizer, "a great film"))
    assert model.training and model.config._attn_implementation == "sdpa"
    detail = get(server, f"/api/tensors/{result['id']}")
    view = detail["view"]
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("a great film")["input_ids"])
    assert detail["kind"] == "attention" and view["key_labels"] == tokens == view["query_labels"]
    n = len(tokens)
    assert (view["layers"], view["heads"], view["q_len"]) == (2, 2, n)
    heads = decode(detail["arrays"]["heads"])
    assert heads.shape == (2, 2, n, n) and np.allclose(heads.sum(-1), 1, atol=1e-5)
    rollout = decode(detail["arrays"]["rollout"])
    assert rollout.shape == (n, n) and np.allclose(rollout.sum(-1), 1, atol=1e-5)
    assert decode(detail["arrays"]["head_average"]).shape == (2, n, n)


def test_capture_of_model_output_with_tokenizer_labels(server: RunningServer, tiny_bert: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("FINETUNE_STUDIO_HOME", str(server.data_dir))
    model = AutoModel.from_pretrained(tiny_bert, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    batch = tokenizer(["a moving story", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**batch, output_attentions=True)
    result = json.loads(debug.capture(outputs, name="outputs", tokenizer=tokenizer,
                                      input_ids=batch["input_ids"]))
    view = get(server, f"/api/tensors/{result['id']}")["view"]
    assert view["batch"] == 2 and view["key_labels"][0] == "[CLS]" and view["key_labels"][-1] == "[SEP]"
