"""The report of a `vbert run`: `run_dir/report.md` with its figures as PNG files beside it.

Sections: stage times (and which stages were skipped as already finished), what the run left
out and why (bad videos, annotations, narrations, as recorded by each stage), the Table 1 and
Table 3 analogues and retrieval (from `run_dir/eval/`), the pretraining loss curves, a mosaic of
visual words, a text-to-video example, the package versions and the exact config.

A section whose inputs are missing (e.g. `vbert run --only generate`) says so instead of failing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vbert.config import Config
from vbert.core.device import describe_device, select_device
from vbert.core.manifest import atomic_write_bytes, package_versions, read_manifest
from vbert.data.synthcook import load_synthcook
from vbert.data.youcook2 import index_videos
from vbert.errors import VbertError
from vbert.features.store import FeatureStore
from vbert.pretraining.saved import load_pretrained
from vbert.pretraining.trainer import read_metrics
from vbert.tasks.generation import exemplar_clips, text_to_video
from vbert.visual_words.figures import (
    clips_nearest_word,
    labelled_clips,
    middle_frames,
    mosaic,
    word_purities,
)
from vbert.visual_words.token_file import read_token_file
from vbert.visual_words.tokenize import assign_words
from vbert.visual_words.vocab import load_vocab

LOSS_FIGURE = "loss-curves.png"
WORDS_FIGURE = "visual-words.png"
TEXT_TO_VIDEO_FIGURE = "text-to-video.png"
MAX_FAILURE_ROWS = 50

# The paper's numbers tagged as quoted ([V]) in docs: YouCook II, not SynthCook; shown for scale only.
PAPER_TABLE1 = "VideoBERT, cross-modal: verb top-1 / top-5 3.2 / 43.3, object top-1 / top-5 13.1 / 33.7"
PAPER_TABLE3 = "VideoBERT + S3D: BLEU-3 7.59, BLEU-4 4.33, METEOR 11.94, ROUGE-L 28.80, CIDEr 0.55"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def collect_failures(run_dir: Path) -> list[dict[str, str]]:
    """Everything a stage of the run left out, as rows {item, stage, reason}, in pipeline order."""
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(stage: str, failures: list[dict]) -> None:
        for f in failures:
            item, reason = str(f.get("item", "?")), str(f.get("reason", "?"))
            if (
                item,
                reason,
            ) not in seen:  # a loader failure is met again by extract and tokenize: listed once
                seen.add((item, reason))
                rows.append({"item": item, "stage": stage, "reason": reason})

    data = run_dir / "synthcook"
    if (data / "manifest.json").is_file():
        add("generate", read_manifest(data).get("failures", []))

        add("annotations", [f.to_dict() for f in load_synthcook(data).failures])
    for folder, stage in (("features", "extract"), ("tokenize", "tokenize"), ("eval", "evaluate")):
        if (run_dir / folder / "manifest.json").is_file():
            add(stage, read_manifest(run_dir / folder).get("failures", []))
    tokens = run_dir / "tokenize" / "tokens.jsonl"
    if tokens.is_file():
        for record in read_token_file(tokens):
            if not any(s.get("text") for s in record.get("sentences", [])):
                rows.append(
                    {
                        "item": record["video_id"],
                        "stage": "tokenize",
                        "reason": "no usable narration: its clips are used as video-only material",
                    }
                )
    return rows


def _failure_lines(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return ["Nothing was left out: every video, annotation and narration was used.", ""]
    items = len({r["item"] for r in rows})
    lines = [
        f"{items} item(s) were left out or used only in part:",
        "",
        "| item | stage | reason |",
        "|---|---|---|",
    ]
    for r in rows[:MAX_FAILURE_ROWS]:
        reason = r["reason"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['item']} | {r['stage']} | {reason} |")
    if len(rows) > MAX_FAILURE_ROWS:
        lines.append(
            f"| ... | | {len(rows) - MAX_FAILURE_ROWS} more rows in the stages' manifest.json files |"
        )
    return lines + [""]


def _eval_table(run_dir: Path, task: str) -> str | None:
    """The table an evaluation wrote (`eval/<task>.md` without its heading), or None."""
    path = run_dir / "eval" / f"{task}.md"
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines).strip()


def _eval_missing_reason(run_dir: Path, task: str) -> str:
    """Why `eval/<task>.md` is missing: the task failed (its recorded error) or has not run."""
    if (run_dir / "eval" / "manifest.json").is_file():
        try:
            failures = read_manifest(run_dir / "eval").get("failures", [])
        except VbertError:
            failures = []
        for f in failures:
            if f.get("item") == task:
                return f"the task failed ({f.get('reason', '?')}); run the evaluate stage again to retry it"
    return "the evaluate stage has not run"


def loss_figure(run_dir: Path, path: Path) -> Path:
    """Pretraining losses per objective, and text MLM of VideoBERT against the text-only BERT."""
    from matplotlib.figure import Figure

    rows = read_metrics(run_dir / "pretrain")
    if not rows:
        raise VbertError(f"{run_dir / 'pretrain' / 'metrics.jsonl'}: no pretraining metrics")
    fig = Figure(figsize=(10, 3.6))
    left, right = fig.subplots(1, 2)
    steps = [r["step"] for r in rows]
    for key in ("text_mlm", "video_mlm", "joint_mlm", "align"):
        if key in rows[0]:
            left.plot(steps, [r[key] for r in rows], label=key.replace("_", " "))
    left.set(title="VideoBERT pretraining, per objective", xlabel="step", ylabel="loss")
    left.legend(fontsize=8)
    right.plot(steps, [r.get("text_mlm", np.nan) for r in rows], label="VideoBERT, text MLM")
    text_only = read_metrics(run_dir / "eval" / "text-only-bert")
    if text_only:
        right.plot(
            [r["step"] for r in text_only],
            [r.get("text_mlm", np.nan) for r in text_only],
            label="text-only BERT (Table 1), text MLM",
        )
    right.plot(steps, [r.get("align_acc", np.nan) for r in rows], "--", label="VideoBERT alignment accuracy")
    right.set(title="Text MLM and alignment accuracy", xlabel="step")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _video_paths(run_dir: Path) -> dict[str, Path]:

    return index_videos(run_dir / "synthcook" / "videos")


def _words_of_store(config: Config, run_dir: Path):
    """(tree, feature store, clip vectors [N, D], word of each clip [N]) of a run."""
    import torch

    tree = load_vocab(run_dir / "vocab", run_dir / "features")
    store = FeatureStore(run_dir / "features")
    vectors = torch.from_numpy(np.asarray(store.features, dtype=np.float32))  # [N, D]
    return tree, store, vectors, assign_words(tree, vectors, config.vocab.assignment)


def visual_words_figure(
    config: Config, run_dir: Path, path: Path, n_words: int = 4, n_clips: int = 5
) -> Path:
    """The most frequent visual words, each shown as the middle frames of its clips nearest the centroid."""
    from matplotlib.figure import Figure

    tree, store, vectors, words = _words_of_store(config, run_dir)
    labels = word_purities(*labelled_clips(read_token_file(run_dir / "tokenize"), "verb"))
    counts = np.bincount(words.numpy(), minlength=tree.vocab_size)
    chosen = [int(w) for w in np.argsort(-counts, kind="stable")[:n_words] if counts[w] > 0]
    paths = _video_paths(run_dir)
    fig = Figure(figsize=(1.6 * n_clips, 1.75 * len(chosen)))
    axes = np.atleast_1d(fig.subplots(len(chosen), 1))
    for ax, word in zip(axes, chosen):
        rows = clips_nearest_word(tree, vectors, word, n=n_clips, words=words)
        clips = [(paths[store.video_ids[i]], float(store.starts[i])) for i in rows]
        frames = middle_frames(clips, config.video.fps, config.video.clip_frames, size=96)  # [n, 96, 96, 3]
        ax.imshow(mosaic(frames, cols=n_clips))
        _, label, share = labels.get(word, (0, "-", 0.0))
        ax.set_title(
            f"word {word}: {counts[word]} clips; {100 * share:.0f}% of its labelled clips are '{label}'",
            fontsize=8,
        )
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def text_to_video_figure(config: Config, run_dir: Path, path: Path, num_words: int = 6) -> Path:
    """VideoBERT's visual words for a validation sentence (as exemplar clips) above the segment's own clips."""
    from matplotlib.figure import Figure

    records = read_token_file(run_dir / "tokenize")
    val = [r for r in records if r.get("subset") == "validation" and r.get("segments")] or [
        r for r in records if r.get("segments")
    ]
    if not val:
        raise VbertError(f"{run_dir / 'tokenize'}: no video with annotated segments")
    record, segment = val[0], val[0]["segments"][0]
    tree, store, _, _ = _words_of_store(config, run_dir)
    model, vocab, tokenizer = load_pretrained(run_dir / "pretrain")
    generated = text_to_video(
        model, tokenizer, vocab, segment["sentence"], num_words=num_words, seed=config.seed
    )
    exemplars = exemplar_clips(records, store, tree.leaf_centroids.float().cpu().numpy())
    paths = _video_paths(run_dir)
    made = [(paths[exemplars[w][0]], exemplars[w][1]) for w in generated if w in exemplars]
    _, starts, ends = store.clips_of(record["video_id"])
    centres = (np.asarray(starts) + np.asarray(ends)) / 2
    own = [
        (paths[record["video_id"]], float(s))
        for s, c in zip(starts, centres)
        if segment["start"] <= c <= segment["end"]
    ][:num_words]
    fig = Figure(figsize=(1.6 * num_words, 3.9))
    axes = fig.subplots(2, num_words, squeeze=False)
    for row, (clips, title) in enumerate(((made, "generated"), (own, "ground truth"))):
        frames = middle_frames(clips, config.video.fps, config.video.clip_frames, size=96) if clips else []
        for col in range(num_words):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(frames):
                ax.imshow(frames[col])
                word = generated[col] if row == 0 else None
                ax.set_title(f"word {word}" if word is not None else f"clip {col + 1}", fontsize=8)
        axes[row, 0].text(
            -0.15,
            0.5,
            title,
            transform=axes[row, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=9,
        )
    fig.suptitle(f'text to video: "{segment["sentence"]}" ({record["video_id"]})', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _figure(lines: list[str], title: str, make: Callable[[], Path], caption: str) -> None:
    """Append a figure section: the picture if it could be made, else why not."""
    lines += [f"### {title}", ""]
    try:
        path = make()
    except (VbertError, OSError, KeyError, ValueError) as err:
        lines += [f"Not available: {err}", ""]
        return
    lines += [f"![{title}]({path.name})", "", caption, ""]


def write_report(config: Config, run_dir: Path, results: list) -> Path:
    """Write `run_dir/report.md` (and its PNG figures) for the stages just run (their `StageResult`)."""
    run_dir = Path(run_dir)
    lines = [
        f"# vbert run: preset `{config.name}`",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; the exact config is at the end "
        + "(also `config.yaml` in this folder).",
        "",
    ]
    lines += ["## Stages", "", "| stage | status | seconds | summary |", "|---|---|---:|---|"]
    for r in results:
        text = ", ".join(f"{k}: {v}" for k, v in r.summary.items() if not isinstance(v, (dict, list)))
        status = r.status
        if r.status == "skipped" and r.built_seconds is not None:
            status = f"skipped (finished earlier in {r.built_seconds:.1f} s)"
        elif r.status == "rerun":
            status = f"ran again ({', '.join(r.changed)} changed)"
        lines.append(f"| {r.name} | {status} | {r.seconds:.1f} | {text} |")
    if not results:
        lines.append("| (no stages) | | | |")
    lines += ["", f"Total: {sum(r.seconds for r in results):.1f} s.", ""]

    lines += ["## What was left out, and why", ""]
    try:
        lines += _failure_lines(collect_failures(run_dir))
    except VbertError as err:
        lines += [f"Not available: {err}", ""]

    lines += ["## Results", ""]
    for task, title, note in (
        (
            "zero-shot",
            "Table 1 analogue: zero-shot verb and noun classification",
            f"The paper (YouCook II validation, {PAPER_TABLE1}). SynthCook is a different, much smaller world: "
            + "compare rows with each other and with chance, not with the paper.",
        ),
        (
            "captioning",
            "Table 3 analogue: captioning on ground-truth segments",
            f"The paper (YouCook II, {PAPER_TABLE3}). BLEU, METEOR and ROUGE-L in percent, CIDEr as is.",
        ),
        ("retrieval", "Text-to-video retrieval by the alignment score", ""),
    ):
        lines += [f"### {title}", ""]
        table = _eval_table(run_dir, task)
        lines += (
            ([table, ""] + ([note, ""] if note else []))
            if table
            else [f"Not available: {_eval_missing_reason(run_dir, task)}.", ""]
        )

    lines += ["## Figures", ""]
    _figure(
        lines,
        "Loss curves",
        lambda: loss_figure(run_dir, run_dir / LOSS_FIGURE),
        "Left: each pretraining objective (masked prediction of text, video and both, alignment). "
        "Right: the text MLM loss of VideoBERT and of the text-only BERT of Table 1.",
    )
    _figure(
        lines,
        "Visual words",
        lambda: visual_words_figure(config, run_dir, run_dir / WORDS_FIGURE),
        "The most frequent visual words; each row shows the middle frames of the clips nearest the "
        "word's centroid, and how many of its clips inside annotated segments share one verb.",
    )
    _figure(
        lines,
        "Text to video",
        lambda: text_to_video_figure(config, run_dir, run_dir / TEXT_TO_VIDEO_FIGURE),
        "Top: the visual words VideoBERT writes after `[CLS] sentence [>]`, each shown as its exemplar "
        "clip (nearest the word's centroid). Bottom: the clips of the segment the sentence describes.",
    )

    lines += ["## Versions", ""]
    lines += [f"- {name}: {version}" for name, version in package_versions().items()]
    lines.append(f"- device: {describe_device(select_device())}")
    config_text = (run_dir / "config.yaml").read_text(encoding="utf-8").rstrip()
    lines += ["", "## Config", "", "```yaml", config_text, "```", ""]
    path = run_dir / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode("utf-8"))
    return path
