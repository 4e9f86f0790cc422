"""Wire contract, Python side: one realistic example of every public model of `wire/` (and a JobSpec),
written to `tests/fixtures/wire/<Model>.json`. The plugin's Kotlin tests (`WireContractTest`) parse each file
into its Kotlin twin, so a field renamed or added here without the Kotlin side breaks a test there."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from finetune_studio import wire
from finetune_studio.spec import DataSpec, JobSpec, LoraSpec, ResourcesSpec, TrainingSpec

FIXTURES = Path(__file__).parent / "fixtures" / "wire"

SPEC = JobSpec(
    name="reviews-sentiment",
    task="text-classification",
    model="/home/ada/models/minilm",
    data=DataSpec(train="/home/ada/data/train.csv", eval="/home/ada/data/dev.csv", text_column="review",
                  label_column="sentiment", max_length=128),
    training=TrainingSpec(epochs=2, batch_size=16, learning_rate=3e-5, warmup_ratio=0.1, precision="bf16",
                          logging_steps=5, args={"report_to": "none", "dataloader_num_workers": 2}),
    lora=LoraSpec(r=16, alpha=32, target_modules=["query", "value"]),
    resources=ResourcesSpec(gpus="all"),
)

PROGRESS = wire.Progress(step=120, max_steps=400, epoch=0.6, samples_per_second=58.3, eta_seconds=481.5)
JOB = wire.Job(
    id="j-7f3a9c", name="reviews-sentiment", task="text-classification", kind="managed", state="failed",
    attempt=2, created_at=1764340000.25, started_at=1764340003.5, finished_at=1764340090.0,
    progress=PROGRESS, device="cuda:0", output_dir="/home/ada/.finetune-studio/jobs/j-7f3a9c",
    error=wire.JobError(type="cuda_oom", message="CUDA out of memory (tried to allocate 2.00 GiB)",
                        hint="lower training.batch_size or raise gradient_accumulation_steps"),
    best_metric={"eval/accuracy": 0.875},
    spec=SPEC,
)
ATTACHED = JOB.model_copy(update={
    "id": "j-0002", "kind": "attached", "task": "custom", "spec": None, "device": None,
    "training_args": {"learning_rate": 5e-05, "num_train_epochs": 1.0, "run_name": "mine", "fp16": False}})
LOG_LINE = wire.LogLine(seq=42, time=1764340010.5, stream="stderr",
                        text="Some weights were newly initialized")
SERIES = wire.Series(step=[5, 10, 15], value=[0.69, None, 0.52],
                     time=[1764340004.0, 1764340005.1, 1764340006.3])
RUNNING = JOB.model_copy(update={"id": "j-0001", "state": "running", "error": None, "finished_at": None,
                                 "best_metric": None})
CPU = wire.Device(index=None, kind="cpu", name="2 CPU cores")
EVAL = {"step": 100, "values": {"eval/accuracy": 0.875}, "confusion_matrix": [[40, 3], [7, 30]],
        "labels": ["neg", "pos"]}

ARRAY = wire.ArrayData(shape=[2, 2], data="AACAPwAAAEAAAEBAAACAQA==")  # [[1, 2], [3, 4]]
HISTOGRAM = wire.HistogramData(edges=[1.0, 2.5, 4.0], counts=[2, 2], sample_size=4, sampled=False)
SUMMARY = wire.TensorSummary(kind="tensor", shape=[2, 2], dtype="torch.float32", device="cpu", numel=4, bytes=16,
                             min=1.0, max=4.0, mean=2.5, std=1.118, nan=0, posinf=0, neginf=0, zeros=0,
                             histogram=HISTOGRAM, text="tensor[2, 2] f32 x∈[1.000, 4.000] μ=2.500 σ=1.118")
TENSOR_INFO = wire.TensorInfo(id="20261130-101500-a1b2c3", name="outputs.logits", kind="tensor",
                              created_at=1764497700.0, bytes=612, summary=SUMMARY)

ANOMALY = wire.Anomaly(kind="nan", step=42, value=None, detail="the logits hold NaN or infinite values",
                       rows=[37, 5, 12], saved_to="/home/ada/.finetune-studio/jobs/j-7f3a9c/anomalies/step-42-nan.pt")

PROBLEM = wire.Problem(loc=["training", "lerning_rate"], field="training.lerning_rate",
                       msg="unknown key; did you mean 'learning_rate'?")

CODE_DIFF = "--- a/prepare.py\n+++ b/prepare.py\n@@ -2 +2 @@\n-epochs = 2\n+epochs = 3\n"
CODE_STATE = wire.CodeState(folder="/home/ada/reviews", repository="/home/ada/reviews", commit="3f9c2e1" * 5 + "ab1d8",
                            branch="main", diff=CODE_DIFF, files={"prepare.py": "epochs = 3\n", "notes.bin": None})
DATA_FILE = wire.DataFile(field="data.train", path="/home/ada/reviews/data/train.csv", size=48213,
                          mtime=1764339990.125, rows=1200, sha256="9b" * 32)
FILE_CHANGE = wire.FileChange(path="prepare.py", diff=CODE_DIFF)
ROW_CHANGE = wire.RowChange(row=12, a=None, b='{"text": "a changed review", "label": "pos"}')
DATA_CHANGE = wire.DataChange(field="data.train", a=DATA_FILE,
                              b=DATA_FILE.model_copy(update={"sha256": "c4" * 32, "mtime": 1764341000.5}),
                              changed_rows=[12], added_rows=0, removed_rows=1, rows=[ROW_CHANGE], note=None)
VALUE_CHANGE = wire.ValueChange(key="training.learning_rate", a=3e-05, b=0.0001)

MIB = 2**20
MEMORY_ESTIMATE = wire.MemoryEstimate(weights=1700 * MIB, gradients=1700 * MIB, optimizer=3400 * MIB,
                                      activations=21000 * MIB, evaluation=9000 * MIB, runtime=600 * MIB,
                                      total=28400 * MIB)
DEVICE_FIT = wire.DeviceFit(name="NVIDIA L4", kind="cuda", index=0, memory=23034 * MIB, fits=False,
                            max_batch_size=8)

EXAMPLES: dict[str, BaseModel] = {
    "Progress": PROGRESS,
    "JobError": JOB.error,  # type: ignore[dict-item]
    "Job": JOB,
    "JobList": wire.JobList(jobs=[JOB, RUNNING, ATTACHED]),
    "Series": SERIES,
    "Metrics": wire.Metrics(series={"train/loss": SERIES}, total_points={"train/loss": 3}),
    "LogLine": LOG_LINE,
    "Logs": wire.Logs(lines=[LOG_LINE, LOG_LINE.model_copy(update={"seq": 43, "stream": "stdout",
                                                                   "text": "ok"})]),
    "StreamEvent": wire.StreamEvent(seq=57, type="metric", time=1764340011.0, data={
        "step": 20,
        "values": {"train/loss": 0.4811, "train/learning_rate": 2.7e-05, "train/grad_norm": None},
    }),
    "ReporterEvent": wire.ReporterEvent(seq=3, type="eval", time=1764340012.0, data=EVAL),
    "IngestBatch": wire.IngestBatch(attempt=1, events=[
        wire.ReporterEvent(seq=1, type="progress", time=1764340004.0, data=PROGRESS.model_dump(mode="json")),
        wire.ReporterEvent(seq=2, type="end", time=1764340099.0, data={"state": "completed"}),
    ]),
    "IngestResult": wire.IngestResult(accepted=2, duplicates=1),
    "RunCreate": wire.RunCreate(name="my script", task="custom", output_dir="/tmp/out",
                                training_args={"learning_rate": 5e-5, "num_train_epochs": 1}, pid=4242),
    "Health": wire.Health(version="0.1.0", pid=31337),
    "Device": wire.Device(index=0, kind="cuda", name="NVIDIA H200", memory_total_mb=143771.0,
                          memory_used_mb=2048.5, utilization=87.0, busy_job="j-7f3a9c"),
    "SystemInfo": wire.SystemInfo(devices=[CPU], versions={"finetune_studio": "0.1.0", "torch": "2.9.1"}),
    "BatchExample": wire.BatchExample(index=812, text="A gorgeous, witty, seductive movie.", label="pos",
                                      tokens=11),
    "StepBatch": wire.StepBatch(step=120, examples=[
        wire.BatchExample(index=3, text="long review " * 5, label="neg", tokens=27),
        wire.BatchExample(index=9, text="short one", label=None, tokens=4),
    ]),
    "EvalSample": wire.EvalSample(input="Ada Lovelace was born in London .", prediction="PER: Ada Lovelace",
                                  reference="PER: Ada Lovelace; LOC: London"),
    "ServerInfo": wire.ServerInfo(url="http://127.0.0.1:51234", token="s3cr3t-t0ken-abcdefgh", pid=31337,
                                  version="0.1.0"),
    "JobSpec": SPEC,
    "Anomaly": ANOMALY,
    "EventList": wire.EventList(events=[wire.StreamEvent(seq=88, type="anomaly", time=1764340020.0,
                                                         data=ANOMALY.model_dump(mode="json"))]),
    "Problem": PROBLEM,
    "ErrorBody": wire.ErrorBody(detail=[PROBLEM], type="invalid_spec",
                                hint="fix the named fields of finetune.toml (or the form) and submit again"),
    "MemoryEstimate": MEMORY_ESTIMATE,
    "DeviceFit": DEVICE_FIT,
    "Estimate": wire.Estimate(
        architecture="BertForSequenceClassification", parameters=22_714_370, trainable_parameters=22_714_370,
        precision="bf16", batch_size=16, sequence_length=256, memory=MEMORY_ESTIMATE, devices=[DEVICE_FIT],
        fits=False, max_batch_size=8, examples=10_605, tokens_per_epoch=1_203_220, steps_per_epoch=663,
        seconds_per_epoch=3725.5, seconds_total=11176.5,
        warning="will not fit: needs about 27.7 GiB at batch size 16, NVIDIA L4 has 22.5 GiB",
        suggestion="training.batch_size = 8, training.gradient_accumulation_steps = 2 (8 × 2 examples per step)",
        suggested={"training.batch_size": 8, "training.gradient_accumulation_steps": 2},
        notes=["close to the limit: 21.9 GiB of 22.5 GiB"]),
    "ArrayData": ARRAY,
    "HistogramData": HISTOGRAM,
    "TensorSummary": SUMMARY,
    "TensorCapture": wire.TensorCapture(name="outputs.logits", kind="tensor", summary=SUMMARY,
                                        view={"preview_shape": [2, 2], "pool": [1, 1], "slice": None},
                                        arrays={"preview": ARRAY}),
    "TensorInfo": TENSOR_INFO,
    "TensorList": wire.TensorList(tensors=[TENSOR_INFO], next=41),
    "TensorDetail": wire.TensorDetail(**TENSOR_INFO.model_dump(), view={"preview_shape": [2, 2]},
                                      arrays={"preview": ARRAY}),
    "CodeState": CODE_STATE,
    "DataFile": DATA_FILE,
    "Lineage": wire.Lineage(job_id="j-7f3a9c", recorded_at=1764340000.3, spec=SPEC, code=CODE_STATE, data=[DATA_FILE],
                            environment={"torch": "2.9.1", "transformers": "4.57.1", "peft": None,
                                         "python": "3.12.3"}),
    "ValueChange": VALUE_CHANGE,
    "FileChange": FILE_CHANGE,
    "RowChange": ROW_CHANGE,
    "DataChange": DATA_CHANGE,
    "LineageDiff": wire.LineageDiff(a="j-7f3a9c", b="j-0001", spec=[VALUE_CHANGE], code=[FILE_CHANGE], code_note=None,
                                    data=[DATA_CHANGE], environment=[wire.ValueChange(key="peft", a=None, b="0.17.1")]),
    "WorktreeCheck": wire.WorktreeCheck(job_id="j-7f3a9c", matches=False, folder="/home/ada/reviews",
                                        repository="/home/ada/reviews", commit_then=CODE_STATE.commit,
                                        commit_now="77e0a4c" * 5 + "d2f3e", changed_files=[FILE_CHANGE],
                                        data_changed=[DATA_CHANGE], note=None),
}


def public_models() -> set[str]:
    return {name for name, value in vars(wire).items()
            if inspect.isclass(value) and issubclass(value, BaseModel)
            and value.__module__.startswith(f"{wire.__name__}.") and not name.startswith("_")}


def test_every_public_model_has_an_example() -> None:
    """A model added to wire/ needs an example here, and so a fixture the Kotlin side must parse."""
    assert public_models() <= set(EXAMPLES), f"no example for {sorted(public_models() - set(EXAMPLES))}"


def test_fixtures_are_written_for_every_model() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, example in EXAMPLES.items():
        text = json.dumps(example.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        path = FIXTURES / f"{name}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    stale = {p.stem for p in FIXTURES.glob("*.json")} - set(EXAMPLES)
    for name in stale:  # a model that left wire/ leaves no fixture behind for the Kotlin side
        (FIXTURES / f"{name}.json").unlink()
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_round_trips(name: str) -> None:
    example = EXAMPLES[name]
    text = json.dumps(example.model_dump(mode="json"))
    assert type(example).model_validate_json(text) == example


def test_job_spec_example_is_valid_for_the_api() -> None:
    """The JobSpec fixture is what the plugin sends (absolute paths, as `load_spec` prints them)."""
    dumped = SPEC.model_dump(mode="json")
    assert dumped["resources"]["gpus"] == "all"
    assert dumped["training"]["args"] == {"report_to": "none", "dataloader_num_workers": 2}
    assert JobSpec.model_validate(dumped) == SPEC
