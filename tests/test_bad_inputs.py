"""Bad data ends in a job error with type, message and hint that name the file, column or row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import RunningServer


def _fail(server: RunningServer, spec: dict[str, Any]) -> Any:
    job = server.client.submit(spec)
    failed = server.wait_for(job.id)
    assert failed.state == "failed", failed
    assert failed.error is not None and failed.error.hint
    return failed.error


def _csv(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


@pytest.fixture
def spec_without_eval(tiny_spec: dict[str, Any]) -> dict[str, Any]:
    tiny_spec["data"].pop("eval")
    tiny_spec["training"].update(epochs=1, eval_strategy="no")
    return tiny_spec


def test_bad_data_files_get_clear_errors(server: RunningServer, spec_without_eval: dict[str, Any],
                                         tmp_path: Path) -> None:
    """One server, one job per kind of bad file (each is refused before training starts)."""
    spec = spec_without_eval
    cases = {
        "wrong column": (_csv(tmp_path, "cols.csv", "review,label\ngood film,positive\n"),
                         ["no column 'text'", "review, label"]),
        "empty": (_csv(tmp_path, "empty.csv", "text,label\n"), ["has no rows"]),
        "label gaps": (_csv(tmp_path, "gaps.csv", "text,label\na,0\nb,1\nc,5\n"), ["0..N-1", "[0, 1, 5]"]),
        "not utf-8": (_csv(tmp_path, "latin.csv", "text,label\ncaf\u00e9 cr\u00e8me,positive\n", "latin-1"),
                      ["line 2", "not UTF-8"]),
        "empty text": (_csv(tmp_path, "blank.csv", 'text,label\ngood,positive\n"  ",negative\n'),
                       ["row 2", "is empty"]),
    }
    for name, (path, expected) in cases.items():
        error = _fail(server, dict(spec, name=name, data=dict(spec["data"], train=path)))
        assert error.type == "data_error", (name, error)
        for fragment in expected:
            assert fragment in error.message + (error.hint or ""), (name, error)


def test_nan_loss_stops_the_job_with_a_hint(server: RunningServer, spec_without_eval: dict[str, Any]) -> None:
    spec = spec_without_eval
    # Plain SGD at an absurd rate (passed through [training.args]) overflows the weights in one step.
    spec["training"].update(warmup_steps=0, epochs=5, args={"optim": "sgd", "learning_rate": 1e30,
                                                          "max_grad_norm": 0})
    error = _fail(server, spec)
    assert error.type == "nan_loss" and "learning_rate" in error.hint
