"""`vbert eval TASK`: the downstream evaluations, each writing a JSON and a Markdown table.

    vbert eval zero-shot --preset tiny --out runs/eval         # Table 1
    vbert eval zero-shot-steps --model runs/base/pretrain ...  # Table 1's VideoBERT rows at each kept checkpoint
    vbert eval data-size --preset tiny --out runs/eval         # Table 2
    vbert eval captioning --preset tiny --out runs/eval        # Table 3
    vbert eval retrieval | forecasting | classification --preset tiny --out runs/eval

Each task builds (or reuses, through the stage cache) the preset's data, features, visual words and
pretrained model. The "evaluate" stage of `vbert run` runs three of them (`vbert.tasks.stage`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from vbert.config import Config, add_config_arguments, config_from_args
from vbert.core.device import select_device
from vbert.core.manifest import atomic_write_bytes, atomic_write_json
from vbert.errors import DataError, VbertError
from vbert.tasks.action_table import data_size_table, table1, zero_shot_by_step
from vbert.tasks.artifacts import Artifacts
from vbert.tasks.caption_metrics import format_scores
from vbert.tasks.caption_table import caption_table
from vbert.tasks.classification import nearest_neighbours, precision_at_k, recipe_probe
from vbert.tasks.data import fill_labels, load_videos, with_labels
from vbert.tasks.embeddings import pooled_video
from vbert.tasks.forecasting import forecasting_table
from vbert.tasks.retrieval import candidate_pool, label_reader_recall, recall_at_k, retrieval_scores
from vbert.tasks.zero_shot import parse_template

TASKS = (
    "zero-shot",
    "zero-shot-steps",
    "data-size",
    "captioning",
    "retrieval",
    "forecasting",
    "classification",
)


def _table(rows: dict[str, dict[str, Any]], fmt: str = "{:.1f}") -> str:
    columns = list(next(iter(rows.values())))
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in rows.items():
        cells = ["missing" if row[c] is None else fmt.format(row[c]) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_zero_shot(
    config: Config, device: str, artifacts: Artifacts | None = None
) -> tuple[dict[str, Any], str]:
    """Table 1."""
    parse_template(config.eval.zero_shot_template)  # a bad template fails before anything is built
    result = table1(config, device, artifacts=artifacts)
    text = (
        f"Zero-shot verb/noun classification, {result['num_segments']} validation segments, "
        f"{len(result['verbs'])} verbs, {len(result['nouns'])} nouns (percent)\n\n" + _table(result["rows"])
    )
    return result, text


def run_zero_shot_steps(
    config: Config, device: str, artifacts: Artifacts | None = None
) -> tuple[dict[str, Any], str]:
    """Table 1's VideoBERT rows at every kept training checkpoint."""
    parse_template(config.eval.zero_shot_template)
    result = zero_shot_by_step(config, device, artifacts=artifacts)
    columns = list(result["chance"])  # "verb top-1", "verb top-5", "noun top-1", ...
    prior_columns = [next(c for c in columns if c.startswith(kind)) for kind in ("verb", "noun")]
    chance = ", ".join(f"{c} {v:.1f}" for c, v in result["chance"].items())
    lines = [
        f"Zero-shot verb/noun classification at each kept training step, {result['num_segments']} validation "
        f"segments (percent; chance: {chance})",
        "",
        "| step | "
        + " | ".join(f"cross-modal {c}" for c in columns)
        + " | "
        + " | ".join(f"language prior {c}" for c in prior_columns)
        + " |",
        "|---:|" + "---:|" * (len(columns) + len(prior_columns)),
    ]
    for row in result["rows"]:
        cross, prior = row["VideoBERT, cross-modal"], row["VideoBERT, language prior"]
        cells = [f"{cross[c]:.1f}" for c in columns] + [f"{prior[c]:.1f}" for c in prior_columns]
        lines.append(f"| {row['step']} | " + " | ".join(cells) + " |")
    return result, "\n".join(lines)


def run_data_size(
    config: Config, device: str, artifacts: Artifacts | None = None
) -> tuple[list[dict[str, float]], str]:
    """Table 2."""
    rows = data_size_table(config, device=device)
    return rows, _table(
        {
            f"{100 * r['fraction']:.0f}% ({r['steps']} steps)": {
                k: v for k, v in r.items() if k not in ("fraction", "steps")
            }
            for r in rows
        }
    )


def run_captioning(
    config: Config, device: str, artifacts: Artifacts | None = None, beam: bool = False
) -> tuple[dict[str, Any], str]:
    """Table 3 (its "VideoBERT + clip features" captioner is kept in `artifacts.captioner_dir`, if set)."""
    keep = artifacts.captioner_dir if artifacts is not None else None
    result = caption_table(config, device, beam=beam, artifacts=artifacts, captioner_dir=keep)
    lines = ["| input | BLEU-3 | BLEU-4 | METEOR | ROUGE-L | CIDEr |", "|---|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['input']} | " + " | ".join(format_scores(row["scores"]).values()) + " |")
    for row in result["rows"] if beam else []:
        lines.append(
            f"| {row['input']}, beam {config.eval.caption_beam_size} | "
            + " | ".join(format_scores(row["beam_scores"]).values())
            + " |"
        )
    for row in result["rows"]:
        row.pop("loss", None)
    return result, "\n".join(lines)


def _model(artifacts: Artifacts, device: str):
    return artifacts.load_videobert(device)


def run_retrieval(
    config: Config, device: str, artifacts: Artifacts | None = None
) -> tuple[dict[str, Any], str]:
    """Caption -> its validation segment among all of them, recall@1/5/10."""
    artifacts = artifacts or Artifacts(config)
    model, vocab, tokenizer = _model(artifacts, device)
    every_video = load_videos(artifacts.tokens(), ("validation",))
    pool = candidate_pool(len(every_video), config.eval.retrieval_max_videos, config.seed)
    segments = [s for i in pool for s in every_video[i].segments if len(s.video_words)]
    if not segments:
        raise DataError(f"{artifacts.tokens()}: no validation segment has visual words to retrieve")
    scores = retrieval_scores(
        model,
        tokenizer,
        vocab,
        [s.sentence for s in segments],
        [s.video_words for s in segments],
        config.pretrain.max_seq_len,
    )  # [Q, C], query i's own segment is candidate i
    ks = (1, 5, 10)
    rows = {"VideoBERT alignment": recall_at_k(scores, range(len(segments)), ks)}
    rows["chance"] = {f"R@{k}": 100.0 * min(1.0, k / len(segments)) for k in ks}
    if all(s.verb and s.noun for s in segments):
        rows["reads verb and noun only, exactly"] = label_reader_recall(
            [(s.verb, s.noun) for s in segments], ks
        )
    result = {
        "rows": rows,
        "num_queries": len(segments),
        "num_segments": len(segments),
        "num_videos": len(pool),
        "num_validation_videos": len(every_video),
    }
    sampled = (
        f" of a seeded sample of {len(pool)} of the {len(every_video)} validation videos"
        if len(pool) < len(every_video)
        else f" of {len(pool)} videos"
    )
    head = f"{len(segments)} captions, each ranked against the {len(segments)} segments{sampled} (percent)"
    return result, head + "\n\n" + _table(result["rows"])


def run_forecasting(
    config: Config, device: str, artifacts: Artifacts | None = None
) -> tuple[dict[str, Any], str]:
    """Next-step forecasting."""
    artifacts = artifacts or Artifacts(config)
    model, vocab, tokenizer = _model(artifacts, device)
    tokens = artifacts.tokens()
    videos = load_videos(tokens, ("validation",))
    train_videos = load_videos(tokens, ("training",))
    train = [s for v in train_videos for s in v.segments]
    _, _, verbs, nouns = with_labels(train, [s for v in videos for s in v.segments])
    for v in [*videos, *train_videos]:  # YouCook2: verb and noun read from each caption
        v.segments = fill_labels(v.segments, verbs=verbs, nouns=nouns)
    result = forecasting_table(
        model,
        tokenizer,
        vocab,
        videos,
        config.eval.zero_shot_template,
        verbs,
        nouns,
        config.pretrain.max_seq_len,
        train_videos=train_videos,
    )
    result.pop("examples"), result.pop("predicted")
    text = (
        f"{result['num_examples']} steps; visual-word accuracy {result['word_accuracy']:.1f}% "
        f"(repeat last word: {result['word_accuracy_repeat_last']:.1f}%)\n\n" + _table(result["rows"])
    )
    return result, text


def run_classification(
    config: Config, device: str, artifacts: Artifacts | None = None
) -> tuple[dict[str, Any], str]:
    """Recipe type from the pooled output; nearest-neighbour precision."""
    artifacts = artifacts or Artifacts(config)
    model, vocab, _ = _model(artifacts, device)
    tokens = artifacts.tokens()
    train, val = load_videos(tokens, ("training",)), load_videos(tokens, ("validation",))
    x_train = pooled_video(model, vocab, [v.words for v in train], config.pretrain.max_seq_len)
    x_val = pooled_video(model, vocab, [v.words for v in val], config.pretrain.max_seq_len)
    probe = recipe_probe(
        x_train, [v.recipe_type for v in train], x_val, [v.recipe_type for v in val], config.seed
    )
    neighbours = nearest_neighbours(x_val, k=3)
    result = {
        "accuracy": probe["accuracy"],
        "labels": probe["labels"],
        "confusion": probe["confusion"].tolist(),
        "chance": 100.0 / len(probe["labels"]),
        "neighbour_precision@3": precision_at_k(neighbours, [v.recipe_type for v in val]),
    }
    text = (
        f"Recipe type of {len(val)} validation videos: linear probe accuracy {result['accuracy']:.1f}% "
        f"(chance {result['chance']:.1f}%); same recipe among 3 nearest neighbours "
        f"{result['neighbour_precision@3']:.1f}%"
    )
    return result, text


RUNNERS = {
    "zero-shot": run_zero_shot,
    "zero-shot-steps": run_zero_shot_steps,
    "data-size": run_data_size,
    "captioning": run_captioning,
    "retrieval": run_retrieval,
    "forecasting": run_forecasting,
    "classification": run_classification,
}


def write_result(out_dir: Path, task: str, result: Any, text: str) -> None:
    """out_dir/<task>.json and out_dir/<task>.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / f"{task}.json", json.loads(json.dumps(result, default=_jsonable)))
    atomic_write_bytes(out_dir / f"{task}.md", (f"# {task}\n\n{text}\n").encode())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert eval`."""
    parser.add_argument("task", choices=TASKS, help="which evaluation to run")
    add_config_arguments(parser)
    parser.add_argument(
        "--out", default="runs/eval", help="folder for <task>.json and <task>.md (default: runs/eval)"
    )
    parser.add_argument("--device", default=None, help="auto, cpu, cuda")
    parser.add_argument(
        "--tokens",
        default=None,
        help="token folder of `vbert tokenize` (default: the preset's, built); the other folders are then read "
        "from the `vbert run` folder it sits in, or must be given",
    )
    parser.add_argument(
        "--features",
        default=None,
        help="features folder of `vbert extract` (default: the run folder's beside --tokens or --model, else the preset's)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="folder of `vbert pretrain` (default: the preset's, trained); without --tokens, a run folder's "
        "model brings that run's tokens and features",
    )
    parser.add_argument(
        "--text-model",
        default=None,
        help="zero-shot: text-only BERT pretraining folder (default: trained with regime_mix [1, 0, 0])",
    )
    parser.add_argument(
        "--beam", action="store_true", help="captioning: also decode with beam search (rows for both)"
    )
    parser.add_argument(
        "--step",
        type=int,
        default=None,
        help="evaluate VideoBERT as it was at this training step (a checkpoint the --model folder kept); "
        "results go to <task>-step<N>.json",
    )


def main(args: argparse.Namespace) -> int:
    """Run one evaluation and print its table."""
    config = config_from_args(args)
    device = str(select_device(args.device))
    artifacts = Artifacts(
        config,
        step=args.step,
        tokens=args.tokens,
        features=args.features,
        pretrained=args.model,
        text_only=args.text_model,
    )
    if args.task == "zero-shot-steps" and args.step is not None:
        raise VbertError("zero-shot-steps evaluates every kept checkpoint; --step does not apply")
    if args.task == "captioning":
        result, text = run_captioning(config, device, artifacts, beam=args.beam)
    elif args.task == "data-size":
        if any(p is not None for p in (args.tokens, args.features, args.model, args.text_model, args.step)):
            raise VbertError(
                "data-size pretrains its own models on the preset's data; --tokens/--model/--step do not apply"
            )
        result, text = run_data_size(config, device)
    else:
        result, text = RUNNERS[args.task](config, device, artifacts)
    name = args.task
    if args.step is not None:
        name = f"{args.task}-step{args.step}"
        text = f"VideoBERT at training step {args.step}.\n\n{text}"
        if isinstance(result, dict):
            result = {**result, "step": args.step}
    write_result(Path(args.out), name, result, text)
    print(text)
    print(f"written: {Path(args.out) / (name + '.json')}")
    return 0
