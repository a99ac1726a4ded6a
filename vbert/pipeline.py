"""`vbert run`: every stage of the pipeline in order, each skipped when its manifest is complete.

A stage is a function `(config, run_dir, force) -> dict` that writes its artifact under
`run_dir/<folder>/` with a manifest and returns a short summary for the report. Stages are
listed in `STAGES` in pipeline order, each naming the folders of earlier stages it reads.

Re-running skips finished work: each stage checks its own manifest (config and inputs), and
`run_dir/pipeline.json` records, per stage, the identity (manifest file hash) of each folder it
read. When one of them changed since (an earlier stage ran again: other settings, other data,
`--force`), the stage runs again even if its own manifest looks complete; `--force` reruns everything asked for. A run
killed mid-stage resumes that stage from what it finished (shards, checkpoints).

The report (`run_dir/report.md`, `vbert.report`) has each stage's time, what was skipped and why,
the Table 1 and Table 3 analogues, figures, the exact config and the package versions.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vbert.config import Config, save_config
from vbert.errors import DataError, StageError
from vbert.manifest import MANIFEST, atomic_write_json, file_sha256, read_json, verify_outputs

STATE_FILE = "pipeline.json"

StageFn = Callable[[Config, Path, bool], dict[str, Any]]


@dataclass
class Stage:
    """One step of the pipeline: its name, what it does, and the function that runs it."""

    name: str
    description: str
    run: StageFn
    folder: str = ""  # where it writes, under the run folder ("" = the stage's name)
    reads: tuple[str, ...] = ()  # folders of earlier stages whose artifacts it uses
    # True: the stage compares the identity of what it reads itself (and keeps finished parts made from
    # the same inputs), so changed inputs do not force it; only --force does.
    checks_inputs: bool = False

    @property
    def out(self) -> str:
        """Folder name of this stage's artifact inside the run folder."""
        return self.folder or self.name


# Filled in pipeline order as stages land: generate, extract, vocab, tokenize, pretrain, evaluate.
STAGES: list[Stage] = []


def _generate_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """SynthCook videos, narrations, annotations and action clips, written to run_dir/synthcook."""
    from vbert.synthcook.generate import run_stage

    return run_stage(config, run_dir, force)


STAGES.append(Stage("generate", "SynthCook videos, narration and ground truth (vbert.synthcook)", _generate_stage,
                    folder="synthcook"))


def _extract_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Clip features of the SynthCook videos in run_dir/synthcook, written to run_dir/features."""
    from vbert.extract import run_stage

    return run_stage(config, run_dir, force)


STAGES.append(Stage("extract", "clips -> 1024-d features (vbert.extract)", _extract_stage,
                    folder="features", reads=("synthcook",)))


def _vocab_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Visual vocabulary fitted on run_dir/features, written to run_dir/vocab."""
    from vbert.visual_vocab import run_vocab_stage

    return run_vocab_stage(config, run_dir, force)


STAGES.append(Stage("vocab", "hierarchical k-means -> visual words (vbert.visual_vocab)", _vocab_stage,
                    reads=("features",)))


def _tokenize_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Clips of run_dir/features -> visual words and sentences in run_dir/tokenize."""
    from vbert.visual_tokens import run_tokenize_stage

    return run_tokenize_stage(config, run_dir, force)


STAGES.append(Stage("tokenize", "clips -> visual words, grouped by narration sentence (vbert.visual_tokens)",
                    _tokenize_stage, reads=("synthcook", "features", "vocab")))


def _pretrain_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Joint VideoBERT pretraining on the tokenize stage's tokens, written to run_dir/pretrain."""
    from vbert.pretrain import pipeline_stage

    return pipeline_stage(config, run_dir, force)


# keep this after the "tokenize" stage
STAGES.append(Stage("pretrain", "joint VideoBERT pretraining: three regimes (vbert.pretrain)", _pretrain_stage,
                    reads=("vocab", "tokenize"), checks_inputs=True))


def _evaluate_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Zero-shot, captioning and retrieval tables of the preset's pretrained model, under run_dir/eval."""
    from vbert.tasks.stage import pipeline_stage

    return pipeline_stage(config, run_dir, force)


# keep this after the "pretrain" stage
STAGES.append(Stage("evaluate", "downstream tasks: zero-shot, captioning, retrieval (vbert.tasks)", _evaluate_stage,
                    folder="eval", reads=("synthcook", "features", "vocab", "tokenize", "pretrain"),
                    checks_inputs=True))


@dataclass
class StageResult:
    """What one stage reported, how long it took, and whether it ran or was already finished."""

    name: str
    seconds: float
    summary: dict[str, Any]
    status: str = "ran"  # "ran", "skipped" (finished earlier) or "rerun" (its inputs had changed)
    built_seconds: float | None = None  # time of the run that built a skipped stage's artifact
    changed: list[str] = field(default_factory=list)  # input folders that changed since the last run


def read_state(run_dir: Path) -> dict[str, Any]:
    """`run_dir/pipeline.json`: per stage, the input hashes it ran with, its output hash, time, summary."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return {}
    try:
        state = read_json(path)
    except DataError as err:
        raise DataError(f"{err}; delete it to let every stage check itself") from None
    if not isinstance(state, dict):
        raise DataError(f"{path}: expected a JSON object of stages")
    return state


def artifact_identity(folder: Path) -> str:
    """SHA-256 of a folder's manifest file ("" without one).

    The whole file, creation time included: a stage that ran again rewrote its manifest, so what
    it produced counts as new even where its config and counts are the same as before.
    """
    path = folder / MANIFEST
    return file_sha256(path) if path.is_file() else ""


def run_folder_of(path: str | Path, folder: str) -> Path | None:
    """The `vbert run` folder whose `folder` stage output `path` is (or holds), or None."""
    path = Path(path)
    here = path if path.is_dir() else path.parent
    return here.parent if here.name == folder and (here.parent / STATE_FILE).is_file() else None


def stage_named(name: str) -> Stage:
    """The registered stage called `name`."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r}; the stages are {', '.join(s.name for s in STAGES)}")


def input_hashes(run_dir: Path, stage: Stage) -> dict[str, str]:
    """Identity of each folder `stage` reads (`artifact_identity`)."""
    return {name: artifact_identity(run_dir / name) for name in stage.reads}


def run_stage(config: Config, run_dir: Path, stage: Stage, state: dict[str, Any], force: bool) -> StageResult:
    """Run one stage (forced when asked, or when an input changed since it last ran); update `state`."""
    for name in stage.reads:  # a damaged or hand-edited artifact is refused, naming the file
        if (run_dir / name / MANIFEST).is_file():
            verify_outputs(run_dir / name)
    inputs = input_hashes(run_dir, stage)
    record = state.get(stage.name)
    changed = sorted(k for k in inputs if record is not None and record.get("inputs", {}).get(k) != inputs[k])
    if changed:
        print(f"[vbert run] {stage.name}: input(s) {', '.join(changed)} changed since it last ran; running again",
              flush=True)
    output = run_dir / stage.out
    before = artifact_identity(output)
    start = time.perf_counter()
    summary = stage.run(config, run_dir, force or (bool(changed) and not stage.checks_inputs))
    seconds = time.perf_counter() - start
    after = artifact_identity(output)
    skipped = before != "" and after == before  # its manifest was not rewritten: nothing ran
    if skipped and record is not None:
        summary = record.get("summary", summary)  # the numbers of the run that built it
    status = "skipped" if skipped else "rerun" if changed else "ran"
    built = record.get("seconds") if skipped and record is not None else None
    state[stage.name] = {
        "inputs": inputs,
        "output": after,
        "seconds": built if built is not None else round(seconds, 2),
        "summary": summary,
    }
    atomic_write_json(run_dir / STATE_FILE, state)
    return StageResult(stage.name, seconds, summary, status, built, changed)


def run_pipeline(config: Config, run_dir: str | Path, force: bool = False, only: list[str] | None = None) -> list[StageResult]:
    """Run the stages (all, or those named in `only`) and write `run_dir/report.md`."""
    from vbert.report import write_report

    run_dir = Path(run_dir)
    unknown = sorted(set(only or ()) - {s.name for s in STAGES})
    if unknown:
        raise DataError(f"unknown stage(s) {', '.join(unknown)}; the stages are {', '.join(s.name for s in STAGES)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    state = read_state(run_dir)
    results = []
    for stage in STAGES:
        if only and stage.name not in only:
            continue
        print(f"[vbert run] {stage.name}: {stage.description}", flush=True)
        try:
            results.append(run_stage(config, run_dir, stage, state, force))
        except StageError:  # finished in part: report what there is, then fail
            write_report(config, run_dir, results)
            raise
    write_report(config, run_dir, results)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert run`."""
    from vbert.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    parser.add_argument("--force", action="store_true", help="re-run stages even when finished")
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only these stages (space- or comma-separated, e.g. --only generate,extract)")


def main(args: argparse.Namespace) -> int:
    """Run the pipeline from the command line."""
    from vbert.cli import config_from_args

    config = config_from_args(args)
    only = [name for item in args.only for name in item.split(",") if name] if args.only is not None else None
    results = run_pipeline(config, args.out, force=args.force, only=only)
    for r in results:
        note = "" if r.status == "ran" else f"  ({r.status})"
        print(f"  {r.name:<12} {r.seconds:7.1f} s{note}")
    print(f"  {'total':<12} {sum(r.seconds for r in results):7.1f} s")
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
