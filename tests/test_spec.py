"""The job spec: TOML loading, defaults, path resolution and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_studio.errors import SpecError
from finetune_studio.spec import check_files, load_spec, parse_spec, spec_json_schema


def write(tmp_path: Path, text: str, name: str = "finetune.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_follow_the_seed_example(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, 'model = "m"\n[data]\ntrain = "d/train.csv"\n'))
    assert (spec.training.epochs, spec.training.batch_size, spec.training.eval_batch_size) == (3, 16, 64)
    assert spec.training.weight_decay == 0.01
    assert spec.task == "text-classification"
    assert spec.name == tmp_path.name  # the TOML's folder names the job


def test_relative_paths_resolve_against_the_toml_folder(tmp_path: Path) -> None:
    (tmp_path / "models" / "m").mkdir(parents=True)
    spec = load_spec(write(tmp_path, 'model = "models/m"\n[data]\ntrain = "data/train.csv"\neval = "../dev.csv"\n'))
    assert spec.data.train == str(tmp_path / "data" / "train.csv")
    assert spec.data.eval == str(tmp_path.parent / "dev.csv")
    assert spec.model == str(tmp_path / "models" / "m")


def test_a_hub_id_stays_a_hub_id(tmp_path: Path) -> None:
    spec = parse_spec({"model": "bert-base-uncased", "data": {"train": "t.csv"}}, tmp_path)
    assert spec.model == "bert-base-uncased"


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, 'model = "m"\n[data]\ntrain = "t.csv"\n[training]\nlearnig_rate = 1e-4\n'))
    problem = caught.value.problems[0]
    assert problem.field == "training.learnig_rate"
    assert "did you mean 'learning_rate'" in problem.message


def test_bad_values_name_their_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"model": "m", "task": "translation", "data": {"train": "t.csv"},
                    "training": {"batch_size": 0}}, tmp_path)
    fields = {p.field for p in caught.value.problems}
    assert fields == {"task", "training.batch_size"}


def test_eval_file_and_fraction_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="either eval"):
        parse_spec({"model": "m", "data": {"train": "t.csv", "eval": "e.csv", "eval_fraction": 0.1}}, tmp_path)


def test_trainer_arguments_pass_through(tmp_path: Path) -> None:
    spec = parse_spec({"model": "m", "data": {"train": "t.csv"},
                       "training": {"args": {"max_grad_norm": 0.5, "optim": "adafactor"}}}, tmp_path)
    assert spec.training.args == {"max_grad_norm": 0.5, "optim": "adafactor"}


def test_missing_files_are_refused_before_training(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    spec = parse_spec({"model": "./empty-model", "data": {"train": "missing.csv"}}, tmp_path)
    with pytest.raises(SpecError) as caught:
        check_files(spec)
    messages = {p.field: p.message for p in caught.value.problems}
    assert "no such file" in messages["data.train"]
    assert "no config.json" in messages["model"]


def test_offline_hub_id_without_cache_is_refused(tmp_path: Path, tiny_bert: Path,
                                                 classification_data: tuple[Path, Path]) -> None:
    spec = parse_spec({"model": "nobody/no-such-model", "data": {"train": str(classification_data[0])}}, tmp_path)
    with pytest.raises(SpecError, match="hub is offline"):
        check_files(spec)


def test_qlora_is_refused_on_a_cpu(tmp_path: Path, tiny_bert: Path, classification_data: tuple[Path, Path]) -> None:
    spec = parse_spec({"model": str(tiny_bert), "data": {"train": str(classification_data[0])},
                       "lora": {"quantize": "4bit"}}, tmp_path)
    with pytest.raises(SpecError) as caught:
        check_files(spec)
    assert caught.value.problems[0].field == "lora.quantize"


def test_json_schema_describes_the_sections() -> None:
    schema = spec_json_schema()
    assert {"name", "task", "model", "data", "training", "lora", "resources"} <= set(schema["properties"])
    assert "TrainingSpec" in schema["$defs"]
