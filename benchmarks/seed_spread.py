"""The course's headline numbers over several seeds: mean, spread and every value.

    VBERT_CACHE=runs/cache OMP_NUM_THREADS=1 python benchmarks/seed_spread.py --preset tiny \
        --seeds 0 1 2 --out runs/seeds

Each seed is a whole pipeline of its own (`--set seed=S`): its own SynthCook videos, features,
vocabulary, pretraining and downstream training, built in the stage cache (seed 0 is what the
notebooks use, so after them it is already there). For each seed the script runs the evaluations of
the demo report and of notebooks 05-08 (Table 1, Table 2, Table 3, retrieval, text to video,
forecasting, recipe classification) and writes `seeds.json` (every value) and `seeds.md` (a table:
mean, standard deviation, minimum and maximum of each number) into `--out`. `--skip` leaves out the
costly Table 2 (it pretrains two more models per seed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from vbert.config import load_config
from vbert.core.device import select_device
from vbert.pretraining.saved import load_pretrained
from vbert.pretraining.trainer import read_metrics
from vbert.tasks.artifacts import Artifacts
from vbert.tasks.cli import RUNNERS
from vbert.tasks.data import load_videos
from vbert.tasks.generation import generation_table


def _pretrain_end(folder: Path) -> dict[str, float]:
    """The last logged alignment accuracy of the pretraining run (its metrics.jsonl)."""
    last = [r for r in read_metrics(folder) if "align_acc" in r][-1]
    return {"alignment accuracy, end of pretraining": 100.0 * last["align_acc"]}


def _text_to_video(artifacts: Artifacts, device: str, seed: int) -> dict[str, float]:
    """Distinct words and verb/noun purity of sampled (t = 0.5) and greedy generations (notebook 08)."""
    model, vocab, tokenizer = load_pretrained(artifacts.pretrained(), device)
    tokens = artifacts.tokens()
    train = [s for v in load_videos(tokens, ("training",)) for s in v.segments]
    val = [s for v in load_videos(tokens, ("validation",)) for s in v.segments if s.video_words]
    rows = generation_table(model, tokenizer, vocab, val, train, 6, (0.0, 0.5), seed)
    out = {}
    for name, short in (
        ("greedy", "greedy"),
        ("sampled, temperature 0.5", "t=0.5"),
        ("random words", "random"),
    ):
        for measure in ("distinct words", "verb purity", "noun purity"):
            out[f"text to video, {short}, {measure}"] = rows[name][measure]
    return out


def measure_seed(preset: str, seed: int, device: str, skip: set[str]) -> dict[str, float]:
    """Every headline number of one seed's pipeline (built in the stage cache when missing)."""
    config = load_config(preset, [f"seed={seed}"])
    artifacts = Artifacts(config)
    numbers: dict[str, float] = {}
    zero_shot, _ = RUNNERS["zero-shot"](config, device, artifacts)
    for row in ("VideoBERT, cross-modal", "VideoBERT, language prior", "text-only BERT, language prior"):
        for column in ("verb top-1", "verb top-5", "noun top-1", "noun top-5"):
            numbers[f"Table 1, {row}, {column}"] = zero_shot["rows"][row][column]
    numbers.update(_pretrain_end(artifacts.pretrained()))
    if "data-size" not in skip:
        for row in RUNNERS["data-size"](config, device, artifacts)[0]:
            for column in ("verb top-5", "noun top-5"):
                numbers[f"Table 2, {100 * row['fraction']:.0f}% of the videos, {column}"] = row[column]
    captions, _ = RUNNERS["captioning"](config, device, artifacts)
    for row in captions["rows"]:
        for metric in ("BLEU-4", "METEOR", "CIDEr"):
            scale = 1.0 if metric == "CIDEr" else 100.0
            numbers[f"Table 3, {row['input']}, {metric}"] = scale * row["scores"][metric]
    retrieval, _ = RUNNERS["retrieval"](config, device, artifacts)
    for row in ("VideoBERT alignment", "chance", "reads verb and noun only, exactly"):
        for k in ("R@1", "R@5"):
            numbers[f"retrieval, {row}, {k}"] = retrieval["rows"][row][k]
    numbers.update(_text_to_video(artifacts, device, seed))
    forecasting, _ = RUNNERS["forecasting"](config, device, artifacts)
    for row, values in forecasting["rows"].items():
        for column in ("verb top-1", "noun top-1"):
            numbers[f"forecasting, {row}, {column}"] = values[column]
    classification, _ = RUNNERS["classification"](config, device, artifacts)
    numbers["recipe classification, probe accuracy"] = classification["accuracy"]
    numbers["recipe classification, chance"] = classification["chance"]
    return numbers


def spread_table(per_seed: dict[int, dict[str, float]]) -> str:
    """Markdown: one row per number with mean, standard deviation, minimum, maximum and each seed's value."""
    seeds = sorted(per_seed)
    names = [n for n in per_seed[seeds[0]] if all(n in per_seed[s] for s in seeds)]
    head = "| number | mean | std | min | max | " + " | ".join(f"seed {s}" for s in seeds) + " |"
    lines = [head, "|---|" + "---:|" * (4 + len(seeds))]
    for name in names:
        values = [per_seed[s][name] for s in seeds]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        cells = [statistics.fmean(values), std, min(values), max(values), *values]
        digits = 2 if "CIDEr" in name or "distinct" in name else 1
        lines.append(f"| {name} | " + " | ".join(f"{v:.{digits}f}" for v in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Measure each seed (resuming from the cache), then write seeds.json and seeds.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/seeds"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip", nargs="*", default=[], choices=["data-size"])
    args = parser.parse_args()
    device = select_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    per_seed: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        done = args.out / f"seed-{seed}.json"
        if done.exists():  # a finished seed is not measured again
            per_seed[seed] = json.loads(done.read_text(encoding="utf-8"))
            continue
        start = time.perf_counter()
        per_seed[seed] = measure_seed(args.preset, seed, device, set(args.skip))
        done.write_text(json.dumps(per_seed[seed], indent=1), encoding="utf-8")
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    (args.out / "seeds.json").write_text(json.dumps(per_seed, indent=1), encoding="utf-8")
    table = spread_table(per_seed)
    (args.out / "seeds.md").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
