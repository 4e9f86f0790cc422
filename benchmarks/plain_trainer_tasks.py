"""The plain `Trainer` scripts a user writes from the Hugging Face task guides, one per task of issue 6:
the yardstick of `bench_tasks.py`. Each follows its guide's recipe with what works offline (seqeval and
sacrebleu instead of `evaluate.load`), on the data files and tiny model folders the benchmark gives it.

    token-classification  first sub-word labelled, DataCollatorForTokenClassification, seqeval F1
    question-answering    question + context truncated to max_length (no stride, as the guide), padded to
                          max_length, DefaultDataCollator, evaluation loss only (the guide stops there)
    seq2seq               text_target, DataCollatorForSeq2Seq, Seq2SeqTrainer with predict_with_generate,
                          BLEU (sacrebleu)
    causal-lm             each pair rendered with the chat template, the texts joined and cut into blocks of
                          max_length (group_texts), DataCollatorForLanguageModeling(mlm=False), perplexity

    .venv/bin/python benchmarks/plain_trainer_tasks.py --task seq2seq --model M --train T --eval E \
        --output-dir OUT --epochs 2 --batch-size 16 --learning-rate 1e-3 --max-length 24 --result r.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    DataCollatorForSeq2Seq,
    DataCollatorForTokenClassification,
    DefaultDataCollator,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    Trainer,
    TrainingArguments,
)


def token_classification(args: argparse.Namespace, raw: Any, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    names = sorted({tag for tags in raw["train"]["tags"] for tag in tags}, key=lambda t: (t != "O", t))
    ids = {name: i for i, name in enumerate(names)}
    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=len(names), id2label=dict(enumerate(names)), label2id=ids)

    def align(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer(batch["tokens"], truncation=True, max_length=args.max_length, is_split_into_words=True)
        all_labels = []
        for row, tags in enumerate(batch["tags"]):
            labels, seen = [], None
            for word in encoded.word_ids(batch_index=row):
                labels.append(-100 if word is None or word == seen else ids[tags[word]])
                seen = word
            all_labels.append(labels)
        encoded["labels"] = all_labels
        return dict(encoded)

    def compute_metrics(prediction: Any) -> dict[str, float]:
        from seqeval.metrics import f1_score

        predicted = np.argmax(prediction.predictions, axis=-1)
        truth = [[names[t] for t in row if t != -100] for row in prediction.label_ids]
        guess = [[names[p] for p, t in zip(prow, trow, strict=True) if t != -100]
                 for prow, trow in zip(predicted, prediction.label_ids, strict=True)]
        return {"f1": float(f1_score(truth, guess))}

    data = raw.map(align, batched=True, remove_columns=raw["train"].column_names)
    return model, {"train_dataset": data["train"], "eval_dataset": data["validation"],
                   "data_collator": DataCollatorForTokenClassification(tokenizer), "compute_metrics": compute_metrics}


def question_answering(args: argparse.Namespace, raw: Any, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    model = AutoModelForQuestionAnswering.from_pretrained(args.model)

    def preprocess(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer([q.strip() for q in batch["question"]], batch["context"], max_length=args.max_length,
                            truncation="only_second", return_offsets_mapping=True, padding="max_length")
        starts, ends = [], []
        for row, offsets in enumerate(encoded.pop("offset_mapping")):
            answer = batch["answers"][row]
            first_char = answer["answer_start"][0]
            last_char = first_char + len(answer["text"][0])
            context = [k for k, s in enumerate(encoded.sequence_ids(row)) if s == 1]
            if offsets[context[0]][0] > first_char or offsets[context[-1]][1] < last_char:
                starts.append(0)
                ends.append(0)
                continue
            start = next(k for k in context if offsets[k][1] > first_char)
            end = next(k for k in reversed(context) if offsets[k][0] < last_char)
            starts.append(start)
            ends.append(end)
        encoded["start_positions"], encoded["end_positions"] = starts, ends
        return dict(encoded)

    data = raw.map(preprocess, batched=True, remove_columns=raw["train"].column_names)
    return model, {"train_dataset": data["train"], "eval_dataset": data["validation"],
                   "data_collator": DefaultDataCollator()}


def seq2seq(args: argparse.Namespace, raw: Any, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model)

    def preprocess(batch: dict[str, list[Any]]) -> dict[str, Any]:
        sources = [args.source_prefix + s for s in batch["source"]]
        return dict(tokenizer(sources, text_target=batch["target"], max_length=args.max_length, truncation=True))

    def compute_metrics(prediction: Any) -> dict[str, float]:
        import sacrebleu

        generated = np.where(prediction.predictions != -100, prediction.predictions, tokenizer.pad_token_id)
        labels = np.where(prediction.label_ids != -100, prediction.label_ids, tokenizer.pad_token_id)
        hypotheses = [t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True)]
        references = [[t.strip() for t in tokenizer.batch_decode(labels, skip_special_tokens=True)]]
        return {"bleu": sacrebleu.corpus_bleu(hypotheses, references).score}

    data = raw.map(preprocess, batched=True, remove_columns=raw["train"].column_names)
    return model, {"train_dataset": data["train"], "eval_dataset": data["validation"],
                   "data_collator": DataCollatorForSeq2Seq(tokenizer, model=model), "compute_metrics": compute_metrics}


def causal_lm(args: argparse.Namespace, raw: Any, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    model = AutoModelForCausalLM.from_pretrained(args.model)

    def render(batch: dict[str, list[Any]]) -> dict[str, Any]:
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                               tokenize=False) for p, r in zip(batch["prompt"], batch["response"],
                                                                               strict=True)]
        return dict(tokenizer(texts, add_special_tokens=False))

    def group(batch: dict[str, list[Any]]) -> dict[str, Any]:
        joined = {key: sum(batch[key], []) for key in batch}
        total = len(joined["input_ids"]) // args.max_length * args.max_length
        return {key: [ids[i:i + args.max_length] for i in range(0, total, args.max_length)]
                for key, ids in joined.items()}

    tokens = raw.map(render, batched=True, remove_columns=raw["train"].column_names)
    data = tokens.map(group, batched=True)
    return model, {"train_dataset": data["train"], "eval_dataset": data["validation"],
                   "data_collator": DataCollatorForLanguageModeling(tokenizer, mlm=False)}


TASKS = {"token-classification": token_classification, "question-answering": question_answering,
         "seq2seq": seq2seq, "causal-lm": causal_lm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=list(TASKS), required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--source-prefix", default="")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()

    raw = load_dataset("json", data_files={"train": args.train, "validation": args.eval})
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model, parts = TASKS[args.task](args, raw, tokenizer)
    arguments = dict(output_dir=str(args.output_dir), num_train_epochs=args.epochs,
                     per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size,
                     learning_rate=args.learning_rate, weight_decay=0.01, eval_strategy="epoch", save_strategy="no",
                     logging_steps=5, seed=42, report_to="none", disable_tqdm=True)
    if args.task == "seq2seq":
        trainer: Trainer = Seq2SeqTrainer(model=model, processing_class=tokenizer, args=Seq2SeqTrainingArguments(
            predict_with_generate=True, generation_max_length=args.max_length, **arguments), **parts)
    else:
        trainer = Trainer(model=model, processing_class=tokenizer, args=TrainingArguments(**arguments), **parts)
    train = trainer.train()
    trainer.save_model(str(args.output_dir / "model"))
    evaluation = [entry for entry in trainer.state.log_history if "eval_loss" in entry][-1]
    if args.task == "causal-lm":
        evaluation["eval_perplexity"] = math.exp(evaluation["eval_loss"])
    args.result.write_text(json.dumps({
        "train_samples_per_second": train.metrics["train_samples_per_second"],
        "train_runtime": train.metrics["train_runtime"], "steps": trainer.state.global_step,
        "train_examples": len(parts["train_dataset"]), "eval": evaluation}), encoding="utf-8")


if __name__ == "__main__":
    main()
