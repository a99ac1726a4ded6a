"""The `vbert` command: one subcommand per pipeline stage.

Each stage module that has a subcommand defines `add_arguments(parser)` and `main(args) -> int`;
the registry below names it, so `vbert --help` lists every stage without importing any of them,
and `vbert STAGE ...` imports only its own module. User mistakes (`VbertError`) print one line,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import yaml

from vbert import __version__
from vbert.config import PRESETS, add_config_arguments, config_from_args
from vbert.errors import VbertError

# (subcommand, module that implements it, one-line help) in pipeline order.
COMMANDS: list[tuple[str, str, str]] = [
    ("info", "vbert.cli", "versions, device and presets of this installation"),
    ("config", "vbert.cli", "print a preset (or YAML file) fully resolved, with overrides applied"),
    (
        "generate",
        "vbert.data.synthcook.generate",
        "render SynthCook: cooking videos, narration, annotations, action clips",
    ),
    (
        "extract",
        "vbert.features.extract",
        "clips -> 1024-d features (S3D, per-frame ResNet or the course network), in shards",
    ),
    (
        "train-extractor",
        "vbert.features.course_training",
        "train the course's S3D-style network on SynthCook's labelled action clips",
    ),
    (
        "vocab",
        "vbert.visual_words.vocab",
        "fit the visual vocabulary: hierarchical k-means (k, depth) on a sample of features",
    ),
    (
        "tokenize",
        "vbert.visual_words.tokenize",
        "every clip -> its visual word, grouped into sentences aligned to the narration",
    ),
    (
        "pretrain",
        "vbert.pretraining.stage",
        "joint VideoBERT pretraining (text-only, video-only, video-text), resumable, DDP",
    ),
    (
        "eval",
        "vbert.tasks.cli",
        "downstream tasks: zero-shot, zero-shot-steps, data-size, captioning, retrieval, forecasting, classification",
    ),
    (
        "run",
        "vbert.pipeline.runner",
        "the whole pipeline, stage by stage, with a report (what `make demo` runs)",
    ),
    (
        "describe",
        "vbert.describe.cli",
        "your own videos with a finished run: visual words, verbs, nouns, captions, similar videos",
    ),
    (
        "bench",
        "vbert.pretraining.bench",
        "benchmarks: `vbert bench pretrain` times vbert against a plain transformers loop",
    ),
]


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="device to check (auto, cpu, cuda, mps)")


def _info_main(args: argparse.Namespace) -> int:
    from vbert.core.device import describe_device, select_device  # imports torch: only for `vbert info`
    from vbert.core.manifest import package_versions

    for name, version in package_versions().items():
        print(f"{name:>24}  {version}")
    print(f"{'device':>24}  {describe_device(select_device(args.device))}")
    print(f"{'presets':>24}  {', '.join(PRESETS)}")
    return 0


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def _config_main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
    return 0


_LOCAL = {"info": (_info_arguments, _info_main), "config": (_config_arguments, _config_main)}


def _handlers(name: str, module: str):
    if module == "vbert.cli":
        return _LOCAL[name]
    mod = importlib.import_module(module)
    return mod.add_arguments, mod.main


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the `selected` subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="vbert",
        description="VideoBERT, built from scratch: one subcommand per pipeline stage.",
    )
    parser.add_argument("--version", action="version", version=f"vbert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="pipeline stages")
    for name, module, help_text in COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            add_arguments, main = _handlers(name, module)
            add_arguments(sp)
            sp.set_defaults(_main=main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vbert` console command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {name for name, _, _ in COMMANDS}
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in names else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except VbertError as err:
        print(f"vbert {args.command}: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)  # 2, or 128 + signal for a job stopped by one
    except KeyboardInterrupt:
        print(f"vbert {args.command}: interrupted; finished work is kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
