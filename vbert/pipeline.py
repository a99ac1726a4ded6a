"""`vbert run`: every stage of the pipeline in order, each skipped when its manifest is complete.

A stage is a function `(config, run_dir, force) -> dict` that writes its artifact under
`run_dir/<stage>/` with a manifest and returns a short summary for the report. Stages are
listed in `STAGES` in pipeline order; the report (`run_dir/report.md`) records each stage's
time, its summary, the exact config and the package versions.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vbert.config import Config, save_config
from vbert.manifest import package_versions

StageFn = Callable[[Config, Path, bool], dict[str, Any]]


@dataclass
class Stage:
    """One step of the pipeline: its name, what it does, and the function that runs it."""

    name: str
    description: str
    run: StageFn


# Filled in pipeline order as stages land: generate, extract, vocab, tokenize, pretrain, evaluate.
STAGES: list[Stage] = []


def _generate_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """SynthCook videos, narrations, annotations and action clips, written to run_dir/synthcook."""
    from vbert.synthcook.generate import run_stage

    return run_stage(config, run_dir, force)


STAGES.append(Stage("generate", "SynthCook videos, narration and ground truth (vbert.synthcook)", _generate_stage))


def _extract_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Clip features of the SynthCook videos in run_dir/synthcook, written to run_dir/features."""
    from vbert.extract import run_stage

    return run_stage(config, run_dir, force)


STAGES.append(Stage("extract", "clips -> 1024-d features (vbert.extract)", _extract_stage))


def _vocab_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Visual vocabulary fitted on run_dir/features, written to run_dir/vocab."""
    from vbert.visual_vocab import run_vocab_stage

    return run_vocab_stage(config, run_dir, force)


STAGES.append(Stage("vocab", "hierarchical k-means -> visual words (vbert.visual_vocab)", _vocab_stage))


def _tokenize_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Clips of run_dir/features -> visual words and sentences in run_dir/tokenize."""
    from vbert.visual_tokens import run_tokenize_stage

    return run_tokenize_stage(config, run_dir, force)


STAGES.append(Stage("tokenize", "clips -> visual words, grouped by narration sentence (vbert.visual_tokens)",
                    _tokenize_stage))


def _pretrain_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Joint VideoBERT pretraining on the tokenize stage's tokens, written to run_dir/pretrain."""
    from vbert.pretrain import pipeline_stage

    return pipeline_stage(config, run_dir, force)


# keep this after the "tokenize" stage
STAGES.append(Stage("pretrain", "joint VideoBERT pretraining: three regimes (vbert.pretrain)", _pretrain_stage))


def _evaluate_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Zero-shot, captioning and retrieval tables of the preset's pretrained model, under run_dir/eval."""
    from vbert.tasks.cli import pipeline_stage

    return pipeline_stage(config, run_dir, force)


# keep this after the "pretrain" stage
STAGES.append(Stage("evaluate", "downstream tasks: zero-shot, captioning, retrieval (vbert.tasks)", _evaluate_stage))


@dataclass
class StageResult:
    """What one stage reported, and how long it took."""

    name: str
    seconds: float
    summary: dict[str, Any]


def run_pipeline(config: Config, run_dir: str | Path, force: bool = False, only: list[str] | None = None) -> list[StageResult]:
    """Run the stages (all, or those named in `only`) and write `run_dir/report.md`."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    results = []
    for stage in STAGES:
        if only and stage.name not in only:
            continue
        print(f"[vbert run] {stage.name}: {stage.description}", flush=True)
        start = time.perf_counter()
        summary = stage.run(config, run_dir, force)
        results.append(StageResult(stage.name, time.perf_counter() - start, summary))
    write_report(config, run_dir, results)
    return results


def write_report(config: Config, run_dir: Path, results: list[StageResult]) -> Path:
    """Write the Markdown report: stage times and summaries, config, versions."""
    lines = [f"# vbert run: preset `{config.name}`", ""]
    lines += ["## Stages", "", "| stage | seconds | summary |", "|---|---:|---|"]
    for r in results:
        text = ", ".join(f"{k}: {v}" for k, v in r.summary.items() if not isinstance(v, (dict, list)))
        lines.append(f"| {r.name} | {r.seconds:.1f} | {text} |")
    if not results:
        lines.append("| (no stages yet) | | |")
    lines += ["", "## Versions", ""]
    lines += [f"- {name}: {version}" for name, version in package_versions().items()]
    lines += ["", "## Config", "", "```yaml", (run_dir / "config.yaml").read_text(encoding="utf-8").rstrip(), "```", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert run`."""
    from vbert.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    parser.add_argument("--force", action="store_true", help="re-run stages even when finished")
    parser.add_argument("--only", nargs="*", default=None, help="run only these stages")


def main(args: argparse.Namespace) -> int:
    """Run the pipeline from the command line."""
    from vbert.cli import config_from_args

    config = config_from_args(args)
    results = run_pipeline(config, args.out, force=args.force, only=args.only)
    for r in results:
        print(f"  {r.name:<12} {r.seconds:7.1f} s")
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
