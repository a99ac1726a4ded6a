"""Generate the SynthCook dataset (the same as `vbert generate`), e.g.

    python data_scripts/make_synthetic.py --preset tiny --out data/synthcook-tiny
    python data_scripts/make_synthetic.py --preset small --set data.num_train_videos=1000 --workers 8

Writes videos/*.mp4, narrations.json (word-level ASR-style captions), annotations.json
(YouCook2 format, with verb and noun per segment), action_clips/ + action_clips.json and a
manifest; an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys

from vbert.data.synthcook.generate import add_arguments, main
from vbert.errors import VbertError


def run(argv: list[str] | None = None) -> int:
    """Parse the arguments of `vbert generate` and run it."""
    parser = argparse.ArgumentParser(description="Generate the SynthCook dataset.")
    add_arguments(parser)
    try:
        return main(parser.parse_args(argv))
    except VbertError as err:
        print(f"make_synthetic: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
