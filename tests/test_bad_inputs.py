"""Careless input is refused at submit with a 422 naming the field (data files, training.args, model
folders); what only training can find (a NaN loss) ends in a job error with type, message and hint."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import RunningServer
from finetune_studio.errors import ApiError


def _fail(server: RunningServer, spec: dict[str, Any]) -> Any:
    job = server.client.submit(spec)
    failed = server.wait_for(job.id)
    assert failed.state == "failed", failed
    assert failed.error is not None and failed.error.hint
    return failed.error


def _refused(server: RunningServer, spec: dict[str, Any]) -> dict[str, str]:
    """The 422 at submit: {field: message} of each problem; nothing is queued."""
    with pytest.raises(ApiError) as caught:
        server.client.submit(spec)
    assert caught.value.status == 422, caught.value.body
    assert not [job for job in server.client.jobs() if job.name == spec["name"]]
    return {d["field"]: d["msg"] for d in caught.value.body["detail"]}


def _csv(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


@pytest.fixture
def spec_without_eval(tiny_spec: dict[str, Any]) -> dict[str, Any]:
    tiny_spec["data"].pop("eval")
    tiny_spec["training"].update(epochs=1, eval_strategy="no")
    return tiny_spec


def test_bad_data_files_are_refused_at_submit(server: RunningServer, spec_without_eval: dict[str, Any],
                                              tmp_path: Path) -> None:
    """Each kind of bad file is refused with a 422 that names the field to fix (before: a job that failed
    in the worker)."""
    spec = spec_without_eval
    cases = {
        "wrong column": (_csv(tmp_path, "cols.csv", "review,label\ngood film,positive\n"),
                         "data.text_column", ["no column 'text'", "review, label"]),
        "empty": (_csv(tmp_path, "empty.csv", "text,label\n"), "data.train", ["has no rows"]),
        "label gaps": (_csv(tmp_path, "gaps.csv", "text,label\na,0\nb,1\nc,5\n"), "data.label_column",
                       ["0..N-1", "[0, 1, 5]"]),
        "not utf-8": (_csv(tmp_path, "latin.csv", "text,label\ncaf\u00e9 cr\u00e8me,positive\n", "latin-1"),
                      "data.train", ["line 2", "not UTF-8"]),
        "empty text": (_csv(tmp_path, "blank.csv", 'text,label\ngood,positive\n"  ",negative\n'), "data.train",
                       ["row 2", "is empty"]),
        "one class": (_csv(tmp_path, "one.csv", "text,label\ngood,positive\nfine,positive\n"),
                      "data.label_column", ["at least two classes"]),
        "labels of two kinds": (_csv(tmp_path, "mixed.jsonl", '{"text": "a", "label": 1}\n'
                                     '{"text": "b", "label": "x"}\n'), "data.label_column", ["mix integers"]),
    }
    for name, (path, field, expected) in cases.items():
        problems = _refused(server, dict(spec, name=name, data=dict(spec["data"], train=path)))
        assert field in problems, (name, problems)
        for fragment in expected:
            assert fragment in problems[field], (name, problems)


def test_evaluation_without_eval_data_is_refused(server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    """Regression: training data only, with evaluation on (the default), failed in the worker with the
    Trainer's raw error."""
    tiny_spec["data"].pop("eval")
    problems = _refused(server, tiny_spec)
    assert "eval_fraction" in problems["data.eval"]


@pytest.mark.parametrize(("args", "field", "fragment"), [
    ({"lerning_rate": 0.1}, "training.args.lerning_rate", "did you mean 'learning_rate'"),
    ({"logging_dir": "/tmp/logs"}, "training.args.logging_dir", "not an argument of TrainingArguments"),
    ({"output_dir": "/tmp/elsewhere"}, "training.args.output_dir", "its own folder"),
    ({"output_dir": "checkpoints"}, "training.args.output_dir", "its own folder"),
])
def test_training_args_are_checked_at_submit(server: RunningServer, tiny_spec: dict[str, Any],
                                             args: dict[str, Any], field: str, fragment: str) -> None:
    """Regression: an unknown argument failed in the worker with a TypeError; `output_dir` wrote
    checkpoints outside the job's folder."""
    tiny_spec["training"]["args"] = args
    problems = _refused(server, tiny_spec)
    assert fragment in problems[field], problems


@pytest.mark.parametrize(("config", "fragment"), [
    ("{}", "no model_type"), ("[1, 2]", "no model_type"), ("{not json", "not readable JSON"),
    ('{"model_type": "bertt"}', "did you mean 'bert'"),
])
def test_a_folder_that_is_not_a_model_is_refused(server: RunningServer, tiny_spec: dict[str, Any],
                                                 tiny_bert: Path, tmp_path: Path, config: str, fragment: str) -> None:
    """Regression: a model folder whose config.json was `{}` failed with a message about sentencepiece."""
    folder = tmp_path / "not-a-model"
    shutil.copytree(tiny_bert, folder)
    (folder / "config.json").write_text(config, encoding="utf-8")
    tiny_spec["model"] = str(folder)
    problems = _refused(server, tiny_spec)
    assert fragment in problems["model"], problems


def test_nan_loss_stops_the_job_with_a_hint(server: RunningServer, spec_without_eval: dict[str, Any]) -> None:
    spec = spec_without_eval
    # Plain SGD at an absurd rate (passed through [training.args]) overflows the weights in one step.
    spec["training"].update(warmup_steps=0, epochs=5, args={"optim": "sgd", "learning_rate": 1e30,
                                                          "max_grad_norm": 0})
    error = _fail(server, spec)
    assert error.type == "nan_loss" and "learning_rate" in error.hint
