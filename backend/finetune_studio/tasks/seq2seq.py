"""Sequence to sequence (translation, summarisation): a source text in, a target text out.

Data: a table with `source_column` and `target_column`; `source_prefix` goes before every source (T5's
"translate English to German: "). Model: any encoder-decoder checkpoint (T5, BART, Marian,
a saved EncoderDecoderModel...), or, when the folder holds an encoder (BERT, MiniLM...), an
EncoderDecoderModel built from two copies of it: the decoder gets new cross-attention layers, trained
from scratch. Training uses `Seq2SeqTrainer`, which generates at evaluation (`predict_with_generate`,
up to `max_length` tokens); metrics: BLEU and chrF (sacrebleu) of the generated text against the target.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import lora
from ..errors import DataError, Unsupported
from ..spec import DataSpec, JobSpec
from . import EVAL_SAMPLES, IGNORED, Prepared, first, load_tokenizer
from .data import load_data, read_table, training_table


def read(path: str, data: DataSpec) -> Any:
    return read_table(path, data)


def columns(data: DataSpec) -> dict[str, str | None]:
    return {"source_column": data.source_column, "target_column": data.target_column}


def check_rows(split: Any, path: str, data: DataSpec) -> None:
    for row, (source, target) in enumerate(zip(split[data.source_column], split[data.target_column], strict=True)):
        for key, value in (("source_column", source), ("target_column", target)):
            if not isinstance(value, str) or not value.strip():
                column = getattr(data, key)
                raise DataError(f"{path}, row {row + 1}: the {key.removesuffix('_column')} ({column!r}) is empty",
                                hint="every row needs a source and a target text; remove or fill in that row")


def load_model(spec: JobSpec, tokenizer: Any) -> Any:
    """The checkpoint's encoder-decoder, or one built from two copies of an encoder."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, EncoderDecoderModel

    config = AutoConfig.from_pretrained(spec.model)
    if config.is_encoder_decoder:
        return AutoModelForSeq2SeqLM.from_pretrained(spec.model, **lora.model_kwargs(spec))
    if spec.lora is not None:
        raise Unsupported(
            f"{spec.model} is an encoder ({config.model_type}): the encoder-decoder built from it has new "
            "cross-attention layers, which LoRA would leave untrained and its adapter would not save",
            hint="remove [lora] to train the whole model, or start from an encoder-decoder checkpoint")
    print(f"{spec.model} is an encoder ({config.model_type}): building an encoder-decoder from two copies; "
          "the decoder's cross-attention is new and trains from scratch", flush=True)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(spec.model, spec.model)
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    for target in (model.config, model.generation_config):
        target.decoder_start_token_id = start
        target.eos_token_id = end
        target.pad_token_id = tokenizer.pad_token_id
    return model


def label_names(train: Any, evaluation: Any | None, data: DataSpec) -> None:
    return None  # no classes: any text is a target


def prepare(spec: JobSpec) -> Prepared:
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer

    data = spec.data
    loaded = load_data(spec)
    train, evaluation = loaded.train, loaded.evaluation
    tokenizer = load_tokenizer(spec)
    model = load_model(spec, tokenizer)

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        sources = [data.source_prefix + s for s in batch[data.source_column]]
        encoded = tokenizer(sources, text_target=batch[data.target_column], truncation=True,
                            max_length=data.max_length)
        encoded["fts_row"] = batch["fts_row"]
        return dict(encoded)

    def tokenize(split: Any) -> Any:
        return split.map(encode, batched=True, remove_columns=split.column_names, desc="tokenizing")

    eval_sources = list(evaluation[data.source_column][:EVAL_SAMPLES]) if evaluation is not None else []
    details: dict[str, Any] = {}

    def compute_metrics(prediction: Any) -> dict[str, float]:
        import sacrebleu

        generated = first(prediction.predictions)
        generated = np.where(generated == IGNORED, tokenizer.pad_token_id, generated)
        labels = np.where(prediction.label_ids == IGNORED, tokenizer.pad_token_id, prediction.label_ids)
        hypotheses = [t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True)]
        references = [t.strip() for t in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        details["samples"] = [{"input": source, "prediction": hypotheses[i], "reference": references[i]}
                              for i, source in enumerate(eval_sources)]
        lengths = (generated != tokenizer.pad_token_id).sum(axis=-1)
        return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
                "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score),
                "generated_length": float(lengths.mean()) if len(lengths) else 0.0}

    return Prepared(
        model=model, tokenizer=tokenizer,
        train_dataset=tokenize(train),
        eval_dataset=tokenize(evaluation) if evaluation is not None else None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORED),  # the model shifts the labels
        compute_metrics=compute_metrics,
        trainer_class=Seq2SeqTrainer,
        training_args={"predict_with_generate": True, "generation_max_length": data.max_length},
        eval_details=lambda: dict(details))


def describe_rows(spec: JobSpec, rows: list[int]) -> list[tuple[str, str | None]]:
    data = spec.data
    picked = training_table(spec).select(rows)
    return list(zip(picked[data.source_column], picked[data.target_column], strict=True))
