"""Causal language modelling (instruction tuning): AutoModelForCausalLM learns to continue text.

Data: a table with a `text_column` (every token is learnt), or with `prompt_column` and
`response_column`: each pair is rendered with the tokenizer's chat template when it has one (the
prompt as the user's turn, the response as the assistant's), else written as prompt then response, and
the loss counts only the response's tokens unless `train_on_prompt`. Every example ends with the
end-of-sequence token. With `packing` the examples are joined into blocks of `max_length` tokens (no
padding, the prompt masks kept); without it an example longer than `max_length` is cut at its end, and one
whose response is cut away entirely is left out with a warning.

At each evaluation: the loss and its perplexity (exp of the mean token loss), and a few generated
responses to eval prompts next to the true ones (for `text` data: the first half of the text as the
prompt, the rest as the reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import lora
from ..errors import DataError
from ..spec import DataSpec, JobSpec
from . import EVAL_SAMPLES, IGNORED, Prepared, load_tokenizer
from .data import load_data, read_table, training_table

SAMPLE_NEW_TOKENS = 64  # generated per eval sample: enough to read a response, cheap on a CPU


@dataclass
class Example:
    """One training example: its tokens, their labels (-100 where no loss), its row of the file."""

    input_ids: list[int]
    labels: list[int]
    row: int


def read(path: str, data: DataSpec) -> Any:
    return read_table(path, data)


def columns(data: DataSpec) -> dict[str, str | None]:
    if (data.prompt_column is None) != (data.response_column is None):
        given = "prompt_column" if data.prompt_column is not None else "response_column"
        missing = "response_column" if given == "prompt_column" else "prompt_column"
        raise DataError("give both data.prompt_column and data.response_column, or neither (and a text_column)",
                        hint=f"data.{given} is set: set data.{missing} too, or remove it", field=f"data.{missing}")
    if data.prompt_column:
        return {"prompt_column": data.prompt_column, "response_column": data.response_column}
    return {"text_column": data.text_column}


def check_rows(table: Any, path: str, data: DataSpec) -> None:
    for key in columns(data):
        for row, value in enumerate(table[getattr(data, key)]):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{path}, row {row + 1}: the {key.removesuffix('_column')} "
                                f"({getattr(data, key)!r}) is empty", hint="fill in or remove that row")


def label_names(train: Any, evaluation: Any | None, data: DataSpec) -> None:
    return None  # no classes: the text is the target


def render(tokenizer: Any, prompt: str, response: str) -> tuple[str, str]:
    """(prompt part, response part) as text: the chat template's user turn plus the assistant header,
    then the rest of the conversation; or the two texts as they are without a template."""
    if not tokenizer.chat_template:
        return prompt, response
    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": response}], tokenize=False)
    if not whole.startswith(head):  # a template that writes the assistant turn differently when it is given
        head = tokenizer.apply_chat_template(user, tokenize=False)
    return head, whole[len(head):]


def encode_pair(tokenizer: Any, prompt: str, response: str, train_on_prompt: bool) -> tuple[list[int], list[int]]:
    """Token ids of prompt + response + end-of-sequence, and labels that mask the prompt (unless asked not
    to). Prompt and response are tokenized apart so that the mask falls exactly on their border."""
    head, tail = render(tokenizer, prompt, response)
    templated = bool(tokenizer.chat_template)  # a template writes its own begin-of-sequence token
    prompt_ids = tokenizer(head, add_special_tokens=not templated)["input_ids"]
    response_ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in response_ids:
        response_ids.append(tokenizer.eos_token_id)  # unless the template ends the turn with it already
    labels = (list(prompt_ids) if train_on_prompt else [IGNORED] * len(prompt_ids)) + list(response_ids)
    return list(prompt_ids) + list(response_ids), labels


def encode_text(tokenizer: Any, text: str) -> tuple[list[int], list[int]]:
    ids = list(tokenizer(text)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids, list(ids)


def pack(examples: list[Example], block: int) -> list[Example]:
    """Join the examples end to end and cut the stream into blocks of `block` tokens (the last, shorter
    one kept); each block is credited to the row it starts in."""
    ids: list[int] = []
    labels: list[int] = []
    rows: list[int] = []
    for example in examples:
        ids += example.input_ids
        labels += example.labels
        rows += [example.row] * len(example.input_ids)
    return [Example(ids[i:i + block], labels[i:i + block], rows[i]) for i in range(0, len(ids), block)]


def build_examples(tokenizer: Any, split: Any, spec: JobSpec, path: str) -> list[Example]:
    data = spec.data
    examples = []
    dropped = []
    for record in split:
        row = record["fts_row"]
        if data.prompt_column:  # check_rows made sure that every value is a text
            prompt, response = record[data.prompt_column], record[data.response_column]
            ids, labels = encode_pair(tokenizer, prompt, response, data.train_on_prompt)
        else:
            ids, labels = encode_text(tokenizer, record[data.text_column])
        if not data.packing:
            ids, labels = ids[:data.max_length], labels[:data.max_length]
            if all(label == IGNORED for label in labels):
                dropped.append(row + 1)
                continue
        examples.append(Example(ids, labels, row))
    if dropped:
        print(f"warning: {path}: left out {len(dropped)} examples whose prompt fills data.max_length "
              f"({data.max_length} tokens), so that no response token is left to learn (rows "
              f"{', '.join(map(str, dropped[:10]))}{'...' if len(dropped) > 10 else ''}); raise data.max_length",
              flush=True)
    if not examples:
        raise DataError(f"{path}: no example has a response token within data.max_length ({data.max_length})",
                        hint="raise data.max_length")
    return pack(examples, data.max_length) if data.packing else examples


def sample_prompts(tokenizer: Any, split: Any, spec: JobSpec) -> list[tuple[str, str, list[int]]]:
    """(shown input, reference, prompt ids) for the first eval rows."""
    data = spec.data
    samples = []
    for record in split.select(range(min(EVAL_SAMPLES, len(split)))):
        if data.prompt_column:
            head, _ = render(tokenizer, record[data.prompt_column], "")
            ids = tokenizer(head, add_special_tokens=not tokenizer.chat_template)["input_ids"]
            samples.append((record[data.prompt_column], record[data.response_column], list(ids)))
        else:
            ids = list(tokenizer(record[data.text_column])["input_ids"])[:data.max_length]
            half = max(1, len(ids) // 2)
            samples.append((tokenizer.decode(ids[:half], skip_special_tokens=True),
                            tokenizer.decode(ids[half:], skip_special_tokens=True), ids[:half]))
    return samples


def generating_trainer(tokenizer: Any, prompts: list[tuple[str, str, list[int]]], details: dict[str, Any]) -> type:
    """A Trainer whose evaluation adds the perplexity and generates a response to each sample prompt."""
    import torch
    from transformers import Trainer

    class GeneratingTrainer(Trainer):
        def evaluation_loop(self, dataloader: Any, description: str, prediction_loss_only: bool | None = None,
                            ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval") -> Any:
            output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                             metric_key_prefix)
            metrics = output.metrics if output.metrics is not None else {}
            loss = metrics.get(f"{metric_key_prefix}_loss")
            if loss is not None:
                # exp(50) is past any meaning; capping it keeps an early, wild loss from overflowing
                metrics[f"{metric_key_prefix}_perplexity"] = math.exp(min(loss, 50.0))
            # Rank 0 alone reports the samples: the other ranks would generate the same ones for nothing
            # (generation on the unwrapped model is no collective, so they need not wait for it here).
            details["samples"] = self.generate_samples() if self.is_world_process_zero() else []
            return output

        @torch.no_grad()
        def generate_samples(self) -> list[dict[str, str]]:
            model = self.accelerator.unwrap_model(self.model)
            was_training = model.training
            model.eval()
            samples = []
            for shown, reference, ids in prompts:
                inputs = torch.tensor([ids], device=self.args.device)
                out = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs),
                                     max_new_tokens=SAMPLE_NEW_TOKENS, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
                text = tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip()
                samples.append({"input": shown, "prediction": text, "reference": reference})
            model.train(was_training)
            return samples

    return GeneratingTrainer


def prepare(spec: JobSpec) -> Prepared:
    import datasets
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

    data = spec.data
    loaded = load_data(spec)
    train, evaluation = loaded.train, loaded.evaluation
    tokenizer = load_tokenizer(spec)
    model = AutoModelForCausalLM.from_pretrained(spec.model, **lora.model_kwargs(spec))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding only fills batches: its labels are -100
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id

    def as_dataset(examples: list[Example]) -> Any:
        return datasets.Dataset.from_dict({"input_ids": [e.input_ids for e in examples],
                                           "attention_mask": [[1] * len(e.input_ids) for e in examples],
                                           "labels": [e.labels for e in examples],
                                           "fts_row": [e.row for e in examples]})

    details: dict[str, Any] = {}
    prompts = sample_prompts(tokenizer, evaluation, spec) if evaluation is not None else []
    return Prepared(
        model=model, tokenizer=tokenizer,
        train_dataset=as_dataset(build_examples(tokenizer, train, spec, data.train)),
        eval_dataset=(as_dataset(build_examples(tokenizer, evaluation, spec, data.eval or data.train))
                      if evaluation is not None else None),
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORED),
        trainer_class=generating_trainer(tokenizer, prompts, details),
        eval_details=lambda: dict(details))


def describe_rows(spec: JobSpec, rows: list[int]) -> list[tuple[str, str | None]]:
    data = spec.data
    picked = training_table(spec).select(rows)
    if data.prompt_column and data.response_column:
        return list(zip(picked[data.prompt_column], picked[data.response_column], strict=True))
    return [(text, None) for text in picked[data.text_column]]
