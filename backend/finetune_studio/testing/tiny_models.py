"""Tiny real models and data for tests and benchmarks: a 2-layer BERT built from a config and a
WordPiece tokenizer trained on the spot, saved to a folder and loaded back through `from_pretrained`
exactly as a user's model folder is."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

POSITIVE = "great wonderful brilliant moving funny superb delightful charming clever touching".split()
NEGATIVE = "terrible boring awful dull clumsy tedious bland painful lifeless messy".split()
FILLER = "the film movie story plot actors was is a an and this that with very really quite its".split()


def sentences(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Labelled sentences a tiny model learns in a few steps: the label shows in the words used."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.choice(["positive", "negative"])
        words = rng.sample(FILLER, 5) + rng.sample(POSITIVE if label == "positive" else NEGATIVE, 2)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def build_tokenizer(folder: Path, corpus: list[str]) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=special))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    BertTokenizerFast(tokenizer_object=tokenizer).save_pretrained(folder)


def build_tiny_bert(folder: Path) -> Path:
    """A 2-layer BERT (hidden 32) with its tokenizer, saved as a base model (no task head)."""
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    corpus = [text for text, _ in sentences(400, seed=1)] + POSITIVE + NEGATIVE + FILLER
    build_tokenizer(folder, corpus)
    from transformers import AutoTokenizer

    vocab_size = len(AutoTokenizer.from_pretrained(folder))
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=128, attn_implementation="eager")
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


def write_classification_data(folder: Path, train: int = 160, evaluation: int = 40) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, count, seed in (("train.csv", train, 2), ("dev.csv", evaluation, 3)):
        path = folder / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(sentences(count, seed))
        paths.append(path)
    return paths[0], paths[1]


# -- issue 6: one tiny model and one small data set per task ------------------------------------------
# The data are made so that a tiny model learns something in a few dozen steps: the answer shows in
# the words used. Each builder saves a folder that loads through `from_pretrained`, as a user's does.

FIRST_NAMES = "anna omar lena kofi mira jonas priya tariq elsa hugo".split()
LAST_NAMES = "berg santos okafor lindqvist moreau tanaka".split()
CITIES = "paris lagos oslo lima kyoto quito".split()
COMPANIES = "acme globex initech umbrella".split()
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# "xa", "xb", ...: every letter after another, so that WordPiece keeps a ##-piece for each and no
# word of a test falls back to [UNK] whole.
LETTER_PAIRS = [a + b for a in "aeiou" for b in ALPHABET]


def ner_sentences(count: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """(tokens, BIO tags) with person, location and organisation entities in a few templates."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        person = [rng.choice(FIRST_NAMES)] + ([rng.choice(LAST_NAMES)] if rng.random() < 0.5 else [])
        person_tags = ["B-PER"] + ["I-PER"] * (len(person) - 1)
        city, company = rng.choice(CITIES), rng.choice(COMPANIES)
        template = rng.randrange(3)
        if template == 0:
            tokens = [*person, "lives", "in", city, "."]
            tags = [*person_tags, "O", "O", "B-LOC", "O"]
        elif template == 1:
            tokens = [*person, "works", "for", company, "in", city]
            tags = [*person_tags, "O", "O", "B-ORG", "O", "B-LOC"]
        else:
            tokens = ["the", company, "office", "in", city, "hired", *person]
            tags = ["O", "B-ORG", "O", "O", "B-LOC", "O", *person_tags]
        rows.append((tokens, tags))
    return rows


def write_conll(path: Path, rows: list[tuple[list[str], list[str]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = ["\n".join(f"{token}\t{tag}" for token, tag in zip(tokens, tags, strict=True)) for tokens, tags in rows]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


CAPITALS = {"norway": "oslo", "peru": "lima", "japan": "kyoto", "ecuador": "quito", "nigeria": "lagos",
            "france": "paris"}
FILLER_SENTENCE = "the weather was mild and the markets were quiet that week ."


def qa_rows(count: int, seed: int = 0, filler: int = 0) -> list[dict[str, object]]:
    """SQuAD-style rows: "what is the capital of X ?" answered by a span of a short context; `filler`
    sentences before the answer push it past the first window of a short max_length."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for index in range(count):
        country = rng.choice(list(CAPITALS))
        other = rng.choice([c for c in CAPITALS if c != country])
        context = (FILLER_SENTENCE + " ") * filler + (
            f"{other} has many rivers . the capital of {country} is {CAPITALS[country]} . "
            f"{CAPITALS[other]} is in {other} .")
        start = context.index(f"is {CAPITALS[country]} .") + 3
        rows.append({"id": f"q{index}", "question": f"what is the capital of {country} ?", "context": context,
                     "answers": {"text": [CAPITALS[country]], "answer_start": [start]}})
    return rows


WORDS_EN_DE = {"the": "der", "dog": "hund", "cat": "katze", "sees": "sieht", "eats": "frisst",
               "bird": "vogel", "big": "grosse", "small": "kleine", "fish": "fisch", "house": "haus"}


def translation_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Word-for-word "translations" from a ten-word dictionary: learnable by a tiny encoder-decoder."""
    rng = random.Random(seed)
    rows = []
    nouns = ["dog", "cat", "bird", "fish", "house"]
    for _ in range(count):
        words = ["the", rng.choice(["big", "small"]), rng.choice(nouns), rng.choice(["sees", "eats"]), "the",
                 rng.choice(nouns)]
        rows.append({"source": " ".join(words), "target": " ".join(WORDS_EN_DE[w] for w in words)})
    return rows


def instruction_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Prompt/response pairs: the response repeats the prompt's colour, so the model must read it."""
    rng = random.Random(seed)
    colours = "red green blue yellow black white".split()
    rows = []
    for _ in range(count):
        colour, thing = rng.choice(colours), rng.choice(["car", "ball", "door", "cup"])
        rows.append({"prompt": f"what colour is the {colour} {thing} ?", "response": f"the {thing} is {colour} ."})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, object]] | list[dict[str, str]]) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def task_corpus() -> list[str]:
    """Every word of the task data above, for the tiny tokenizers."""
    corpus = [" ".join(tokens) for tokens, _ in ner_sentences(200, seed=1)]
    corpus += [f"{row['question']} {row['context']}" for row in qa_rows(50, seed=1, filler=1)]
    corpus += [f"{row['source']} {row['target']}" for row in translation_rows(50, seed=1)]
    corpus += [f"{row['prompt']} {row['response']}" for row in instruction_rows(50, seed=1)]
    return corpus + [text for text, _ in sentences(100, seed=1)] + LETTER_PAIRS + list(ALPHABET)


def build_tiny_encoder(folder: Path) -> Path:
    """A 2-layer BERT like `build_tiny_bert`, with a vocabulary that covers the task data (NER, QA,
    the English and German of the translation data)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    build_tokenizer(folder, task_corpus())
    vocab_size = len(AutoTokenizer.from_pretrained(folder))
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=256, attn_implementation="eager")
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


def _plain_tokenizer(corpus: list[str], special: list[str], vocab_size: int = 400):  # type: ignore[no-untyped-def]
    """A lower-casing WordPiece tokenizer whose decode joins words with spaces (for generated text)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    return tokenizer


def build_tiny_t5(folder: Path) -> Path:
    """A 2-layer T5 (d_model 32): an encoder-decoder checkpoint as a user's would be."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    raw = _plain_tokenizer(task_corpus(), ["<pad>", "</s>", "<unk>"])
    eos = raw.token_to_id("</s>")
    raw.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", eos)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(folder)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=4, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos,
                      decoder_start_token_id=tokenizer.pad_token_id)
    import torch

    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    return folder


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|> {% endif %}")


def build_tiny_llama(folder: Path, chat_template: bool = True) -> Path:
    """A 2-layer Llama (hidden 32) whose tokenizer adds <s> and, by default, has a chat template."""
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    special = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|end|>"]
    raw = _plain_tokenizer(task_corpus(), special)
    bos = raw.token_to_id("<s>")
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>",
                                        additional_special_tokens=["<|user|>", "<|assistant|>", "<|end|>"])
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=bos, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def built(folder: Path, builder: Callable[[Path], Path]) -> Path:
    """`builder(folder)` once per test session: test modules share the models of the session's temp folder."""
    return folder if (folder / "config.json").is_file() else builder(folder)


def build_bert(folder: Path, hidden: int, layers: int) -> Path:
    """A BERT big enough that its activations outweigh the worker's imports (hidden 256, 4 layers: 3.4M
    parameters, ~0.5 GB of activations at batch 16 x 256 tokens)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    if (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True)
    build_tokenizer(folder, [text for text, _ in sentences(400, seed=1)] + POSITIVE + NEGATIVE)
    config = BertConfig(vocab_size=len(AutoTokenizer.from_pretrained(folder)), hidden_size=hidden,
                        num_hidden_layers=layers, num_attention_heads=4, intermediate_size=4 * hidden,
                        max_position_embeddings=512, attn_implementation="eager")
    BertModel(config).save_pretrained(folder)
    return folder


def long_reviews(path: Path, rows: int, words: int) -> Path:
    """Reviews of about `words` words, so that every example fills data.max_length."""
    rng = random.Random(0)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for row in range(rows):
            text = " ".join(t for t, _ in sentences(words // 7 + 1, seed=row))
            writer.writerow([text, rng.choice(["positive", "negative"])])
    return path


def classification_dataset(tokenizer: Any, count: int, seed: int = 0,
                           planted: tuple[int, str, str] | None = None) -> Any:
    """`sentences(count, seed)` tokenized as a user's script tokenizes them for `Trainer` (labels 0/1);
    `planted` = (index, text, label) inserts one row of its own."""
    import datasets

    rows = sentences(count, seed=seed)
    if planted is not None:
        rows.insert(planted[0], (planted[1], planted[2]))
    data = datasets.Dataset.from_dict({"text": [text for text, _ in rows],
                                       "label": [int(label == "positive") for _, label in rows]})
    return data.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
