"""Time SynthCook generation (rendering + mp4 encoding) and decoding for a preset.

    python benchmarks/synthcook_bench.py --preset tiny --workers 2

Prints the wall-clock seconds to generate the preset's dataset into a fresh temporary folder, the
CPU seconds it used (this process and its workers: on a shared machine this is the steadier number;
on N idle cores the wall time is about CPU seconds / N), the rendered frames per wall-clock second,
and the seconds to decode every video into 30-frame clips with vbert.data.video.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from vbert.config import load_config
from vbert.data.synthcook import generate_synthcook, load_synthcook
from vbert.data.video import read_clips


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    """Run the benchmark and print one JSON line of results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    config = load_config(args.preset, args.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        root = generate_synthcook(Path(tmp) / "sc", config, show_progress=False, workers=args.workers)
        generate_s, generate_cpu_s = time.perf_counter() - start, _cpu_seconds() - cpu_start
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        clip_seconds = manifest["action_clips"] * config.data.action_clip_seconds
        frames = (manifest["seconds"] + clip_seconds) * config.data.fps
        start = time.perf_counter()
        clips = sum(
            len(read_clips(v.path, config.video.fps, config.video.clip_frames, config.video.crop_size))
            for v in load_synthcook(root).videos.values()
        )
        decode_s = time.perf_counter() - start
    print(
        json.dumps(
            {
                "preset": args.preset,
                "workers": args.workers,
                "videos": manifest["videos"],
                "action_clips": manifest["action_clips"],
                "video_seconds": manifest["seconds"],
                "generate_s": round(generate_s, 1),
                "generate_cpu_s": round(generate_cpu_s, 1),
                "rendered_frames_per_s": round(frames / generate_s),
                "decode_s": round(decode_s, 1),
                "clips": clips,
            }
        )
    )


if __name__ == "__main__":
    main()
