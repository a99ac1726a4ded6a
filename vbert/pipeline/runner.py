"""`vbert run`: every stage of the pipeline in order, each skipped when its manifest is complete.

The stages are listed in `STAGES` in pipeline order; each is defined beside the code it runs
(`vbert.core.stages.Stage`: its folder, what it needs, its one `run` entry point) and built by the
one resolver, `vbert.core.stages.Resolver`, here in a run folder: `run_dir/<folder>/` per stage.

Re-running skips finished work: each stage checks its own manifest (config and inputs), and
`run_dir/pipeline.json` records, per stage, the identity (manifest file hash) of each folder it
read. When one of them changed since (an earlier stage ran again: other settings, other data,
`--force`), the stage runs again even if its own manifest looks complete; `--force` reruns
everything asked for. A run killed mid-stage resumes that stage from what it finished (shards,
checkpoints).

The report (`run_dir/report.md`, `vbert.pipeline.report`) has each stage's time, what was skipped
and why, the Table 1 and Table 3 analogues, figures, the exact config and the package versions.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from vbert.config import Config, add_config_arguments, config_from_args, save_config
from vbert.core.stages import Resolver, Stage, StageResult
from vbert.data.synthcook.generate import STAGE as GENERATE
from vbert.errors import DataError, StageError
from vbert.features.extract import STAGE as EXTRACT
from vbert.pipeline.report import write_report
from vbert.pretraining.stage import STAGE as PRETRAIN
from vbert.tasks.stage import STAGE as EVALUATE
from vbert.tasks.stage import text_only_ahead
from vbert.visual_words.tokenize import STAGE as TOKENIZE
from vbert.visual_words.vocab import STAGE as VOCAB

# In pipeline order: each stage comes after the stages it needs.
STAGES: list[Stage] = [GENERATE, EXTRACT, VOCAB, TOKENIZE, PRETRAIN, EVALUATE]


def stage_named(name: str) -> Stage:
    """The registered stage called `name`."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r}; the stages are {', '.join(s.name for s in STAGES)}")


def run_pipeline(
    config: Config, run_dir: str | Path, force: bool = False, only: list[str] | None = None
) -> list[StageResult]:
    """Run the stages (all, or those named in `only`) and write `run_dir/report.md`."""
    run_dir = Path(run_dir)
    unknown = sorted(set(only or ()) - {s.name for s in STAGES})
    if unknown:
        raise DataError(
            f"unknown stage(s) {', '.join(unknown)}; the stages are {', '.join(s.name for s in STAGES)}"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    names = only if only else [s.name for s in STAGES]
    resolver = Resolver(config, run_dir, force=force, only=names)
    with contextlib.ExitStack() as beside:
        for stage in STAGES:
            if stage.name not in names:
                continue
            if stage is PRETRAIN and EVALUATE.name in names:
                # the text-only BERT of Table 1 needs only the tokens: it trains while VideoBERT does
                ahead = text_only_ahead(config, run_dir)
                if ahead is not None:
                    beside.enter_context(ahead)
            print(f"[vbert run] {stage.name}: {stage.description}", flush=True)
            try:
                resolver.folder(stage)
            except StageError:  # finished in part: report what there is, then fail
                write_report(config, run_dir, resolver.results)
                raise
    write_report(config, run_dir, resolver.results)
    return resolver.results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert run`."""
    add_config_arguments(parser)
    parser.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    parser.add_argument("--force", action="store_true", help="re-run stages even when finished")
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only these stages (space- or comma-separated, e.g. --only generate,extract)",
    )


def main(args: argparse.Namespace) -> int:
    """Run the pipeline from the command line."""
    config = config_from_args(args)
    only = [name for item in args.only for name in item.split(",") if name] if args.only is not None else None
    results = run_pipeline(config, args.out, force=args.force, only=only)
    for r in results:
        note = "" if r.status == "ran" else f"  ({r.status})"
        print(f"  {r.name:<12} {r.seconds:7.1f} s{note}")
    print(f"  {'total':<12} {sum(r.seconds for r in results):7.1f} s")
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
