"""The demo's fine-tune written as a plain script, the way HF's text-classification example (run_glue.py)
does it by default: `Trainer` + `TrainingArguments`, `report_to="none"`, every example padded to a fixed
`max_length=128`. The yardstick of `bench_demo_finetune.py`; the hyper-parameters are those that
`finetune_studio.demo.write_demo` puts in `finetune.toml` (and the job spec's defaults for the rest).

    .venv/bin/python benchmarks/plain_trainer_demo.py --data DEMO_FOLDER/data --model MINILM_FOLDER \
        --output-dir OUT --epochs 2 --result result.json [--padding dynamic --max-length 64]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    Trainer,
    TrainingArguments,
    default_data_collator,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with train.csv and dev.csv")
    parser.add_argument("--model", required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-length", type=int, default=128, help="run_glue's default")
    parser.add_argument("--padding", choices=["max_length", "dynamic"], default="max_length",
                        help="run_glue pads to max_length unless --pad_to_max_length False")
    parser.add_argument("--result", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()

    raw = load_dataset("csv", data_files={"train": str(args.data / "train.csv"),
                                          "validation": str(args.data / "dev.csv")})
    labels = sorted(set(raw["train"]["label"]))
    label_to_id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_to_id)
    padding = "max_length" if args.padding == "max_length" else False

    def preprocess(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        encoded = tokenizer(batch["text"], padding=padding, max_length=args.max_length, truncation=True)
        encoded["labels"] = [label_to_id[label] for label in batch["label"]]
        return dict(encoded)

    data = raw.map(preprocess, batched=True, remove_columns=["text", "label"])

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        predicted = np.argmax(prediction.predictions, axis=-1)
        return {"accuracy": float((predicted == prediction.label_ids).mean())}

    training_args = TrainingArguments(
        output_dir=str(args.output_dir), num_train_epochs=args.epochs, per_device_train_batch_size=16,
        per_device_eval_batch_size=64, learning_rate=1e-4, weight_decay=0.01,
        warmup_steps=0.06,  # transformers 5 reads a value below 1 as a share of all steps
        logging_steps=5, eval_strategy="steps", eval_steps=50, save_strategy="steps", save_steps=50,
        save_total_limit=2, seed=42, report_to="none", disable_tqdm=True)
    trainer = Trainer(
        model=model, args=training_args, train_dataset=data["train"], eval_dataset=data["validation"],
        processing_class=tokenizer, compute_metrics=compute_metrics,
        data_collator=default_data_collator if padding else DataCollatorWithPadding(tokenizer))
    train = trainer.train()
    trainer.save_model(str(args.output_dir / "model"))
    evaluations = [entry for entry in trainer.state.log_history if "eval_accuracy" in entry]
    result = {
        "train_samples_per_second": train.metrics["train_samples_per_second"],
        "train_runtime": train.metrics["train_runtime"],
        "steps": trainer.state.global_step,
        "eval_accuracy": evaluations[-1]["eval_accuracy"] if evaluations else None,
        "eval_step": evaluations[-1]["step"] if evaluations else None,
    }
    print(json.dumps(result))
    if args.result:
        args.result.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
