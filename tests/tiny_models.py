"""Tiny real models and data for tests and benchmarks: a 2-layer BERT built from a config and a
WordPiece tokenizer trained on the spot, saved to a folder and loaded back through `from_pretrained`
exactly as a user's model folder is."""

from __future__ import annotations

import csv
import random
from pathlib import Path

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
