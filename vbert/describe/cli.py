"""`vbert describe PATH [PATH...]`: describe your own videos with a finished `vbert run` folder.

    vbert describe my_video.mp4                                  # with runs/demo (`make demo`)
    vbert describe a.mp4 b.mkv --run runs/base --out described --sentence "slice the bread" --similar 5

Writes describe.json, describe.md and a storyboard PNG per video into --out. A path that cannot be
described is one line on stderr naming the file and the problem; the others are still described.
Exit code: 0 when every path was described, 1 when some were not, 2 when none was (or the run folder
cannot be used).
"""

from __future__ import annotations

import argparse
import sys

from vbert.core.device import select_device
from vbert.describe.report import describe, print_summary
from vbert.describe.run import DEFAULT_RUN


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert describe`."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="video files (any format OpenCV reads)")
    parser.add_argument(
        "--run",
        default=str(DEFAULT_RUN),
        help=f"a finished `vbert run` folder (default: {DEFAULT_RUN}, which `make demo` writes)",
    )
    parser.add_argument(
        "--out",
        default="runs/describe",
        help="folder for describe.json, describe.md, storyboards (default: runs/describe)",
    )
    parser.add_argument(
        "--sentence",
        action="append",
        default=[],
        help="a sentence to score against each segment with the alignment head (repeat for several)",
    )
    parser.add_argument(
        "--similar",
        type=int,
        default=0,
        metavar="N",
        help="list the N videos of the run's dataset most like each video",
    )
    parser.add_argument(
        "--segment-clips",
        type=int,
        default=None,
        help="clips per segment (default: the run's vocab.words_per_segment, 16: the paper's video sentence)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default: cpu)")


def main(args: argparse.Namespace) -> int:
    """Describe the videos; one line per path that could not be described."""
    result = describe(
        args.paths,
        run=args.run,
        out=args.out,
        sentences=args.sentence,
        similar=args.similar,
        segment_words=args.segment_clips,
        device=str(select_device(args.device)),
    )
    print_summary(result)
    for _, reason in result.failures:
        print(f"vbert describe: error: {reason}", file=sys.stderr)
    if result.files:
        print(
            f"written: {', '.join(str(f) for f in result.files[:2])} and {len(result.files) - 2} storyboard(s)"
        )
    if result.failures:
        return 1 if result.videos else 2
    return 0
