"""How long `vbert describe` takes on a 60-second 720p video, end to end and part by part.

    vbert run --preset tiny --out runs/demo
    python benchmarks/describe_bench.py --run runs/demo --seconds 60 --repeats 3

Writes a cooking video of `--seconds` at 25 fps, 1280x720 (the run's validation videos one after
another, resampled and scaled up with OpenCV), then times `vbert describe VIDEO --similar 5
--sentence ...` as a user runs it (a new process: imports, opening the run, decoding, features,
words, zero-shot, captions, alignment, similar videos, the files), `--repeats` times, and once more
in this process part by part. Wall and CPU seconds (the child's user + system time), with the
machine's load average: on a shared machine the CPU seconds are the steadier number.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from vbert.data.video import read_frames
from vbert.describe import describe, open_run


def make_video(
    run: Path, path: Path, seconds: float, fps: float = 25.0, size: tuple[int, int] = (1280, 720)
) -> Path:
    """The run's validation videos, one after another, at `fps` and `size`, `seconds` long (OpenCV, mp4v)."""
    sources = sorted((run / "synthcook" / "videos").glob("sc_val_*.mp4"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    written, wanted = 0, int(round(seconds * fps))
    while written < wanted:
        for source in sources:
            frames, _ = read_frames(source, fps=fps)  # [T, h, w, 3] RGB
            for frame in frames[: wanted - written]:
                writer.write(
                    cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2BGR)
                )
            written += min(len(frames), wanted - written)
            if written >= wanted:
                break
    writer.release()
    return path


def main() -> None:
    """Print the timings of docs/benchmarks.md ("`vbert describe`: a 60-second 720p video")."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run = Path(args.run)
    work = Path(tempfile.mkdtemp(prefix="describe-bench-"))
    video = make_video(run, work / "cooking-720p.mp4", args.seconds)
    info = cv2.VideoCapture(str(video))
    print(
        f"{video.name}: {int(info.get(cv2.CAP_PROP_FRAME_COUNT))} frames at {info.get(cv2.CAP_PROP_FPS):g} fps, "
        f"{int(info.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(info.get(cv2.CAP_PROP_FRAME_HEIGHT))}, "
        f"{video.stat().st_size / 1e6:.1f} MB"
    )
    info.release()
    command = [
        sys.executable,
        "-m",
        "vbert.cli",
        "describe",
        str(video),
        "--run",
        str(run),
        "--out",
        str(work / "out"),
    ]
    command += ["--similar", "5", "--sentence", "crack the eggs into the bowl", "--device", "cpu"]
    for threads in ("default", "1"):
        env = dict(os.environ) if threads == "default" else {**os.environ, "OMP_NUM_THREADS": threads}
        for i in range(args.repeats):
            start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(command, env=env, check=True, capture_output=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            print(
                f"vbert describe, torch threads {threads}, run {i + 1}: {time.perf_counter() - start:.1f} s wall, "
                f"{cpu:.1f} s CPU (load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    start = time.perf_counter()
    finished = open_run(run)
    opened = time.perf_counter() - start
    start = time.perf_counter()
    result = describe(video, finished, work / "in-process", ["crack the eggs into the bowl"], similar=5)
    total = time.perf_counter() - start
    parts = result.videos[0].seconds
    print(f"in this process: open the run {opened:.1f} s; describe {total:.1f} s, of which {parts}")
    print(f"clips {len(result.videos[0].words)}, segments {len(result.videos[0].segments)}")


if __name__ == "__main__":
    main()
