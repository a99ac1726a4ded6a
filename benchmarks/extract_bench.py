"""Feature-extraction throughput: decoding alone, the network alone, and `extract_features` end to end.

Decoding runs on CPU cores (one per DataLoader worker); the network runs on --device. Comparing
decoded clips/s per core with the network's clips/s says whether extraction is decode-bound and
how many decoding workers keep the network busy. With --probe it also measures the linear-probe
accuracy (verb, noun) of the course extractor and of random-weight S3D on SynthCook's action clips.

    python benchmarks/extract_bench.py --preset tiny --videos 16 --workers 0 1 2
    python benchmarks/extract_bench.py --preset base --device cuda --extractor s3d --weights none --workers 0 4 8
    python benchmarks/extract_bench.py --preset tiny --probe
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from vbert import load_config
from vbert.core.stages import resolve
from vbert.data.synthcook.generate import STAGE as GENERATE
from vbert.data.video import read_clips
from vbert.features.extract import extract_features, list_videos
from vbert.features.extractors import build_extractor


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_decode(videos: list, config) -> dict:
    """Decode every video in this process with one thread: clips/s and frames/s on one core."""
    import cv2

    cv2.setNumThreads(1)
    clips = frames = 0
    start = time.perf_counter()
    for _, path in videos:
        out = read_clips(path, config.video.fps, config.video.clip_frames, config.video.crop_size)
        clips += len(out)
        frames += len(out) * config.video.clip_frames
    seconds = time.perf_counter() - start
    return {
        "videos": len(videos),
        "clips": clips,
        "seconds": round(seconds, 2),
        "clips_per_s_per_core": round(clips / seconds, 1),
        "frames_per_s_per_core": round(frames / seconds, 1),
    }


def bench_network(config, device: torch.device, clips: int) -> dict:
    """The extractor alone on random uint8 clips at the preset's crop size."""
    extractor = build_extractor(config.features.extractor, config.features.weights, device)
    size, t = config.video.crop_size, config.video.clip_frames
    batch = np.random.default_rng(0).integers(
        0, 256, (config.features.batch_size, t, size, size, 3), dtype=np.uint8
    )
    extractor(batch)  # warm-up
    _sync(device)
    done, start = 0, time.perf_counter()
    while done < clips:
        extractor(batch, batch_size=config.features.batch_size)
        done += len(batch)
    _sync(device)
    seconds = time.perf_counter() - start
    return {
        "clips": done,
        "seconds": round(seconds, 2),
        "clips_per_s": round(done / seconds, 1),
        "batch_size": config.features.batch_size,
        "threads": torch.get_num_threads(),
    }


def bench_end_to_end(root: Path, videos: int, config, device: torch.device, workers: int) -> dict:
    """`extract_features` on the first `videos` SynthCook videos with `workers` decoding processes."""
    config.features.num_workers = workers
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "videos"
        source.mkdir()
        for _, path in list_videos(root)[0][:videos]:
            (source / path.name).symlink_to(path.resolve())
        start = time.perf_counter()
        out = extract_features(source, Path(tmp) / "features", config, device=device, show_progress=False)
        seconds = time.perf_counter() - start
        clips = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["outputs"]["clips"]
    return {
        "workers": workers,
        "clips": clips,
        "seconds": round(seconds, 2),
        "clips_per_s": round(clips / seconds, 1),
    }


def bench_probe(root: Path, config, device: torch.device, s3d_clips: int) -> dict:
    """Linear-probe accuracies: trained course features vs random-weight S3D (few clips, small crops)."""
    from vbert.features.course_training import action_clip_probe

    size = config.video.crop_size
    out = {"course": action_clip_probe(build_extractor("course", "default", device), root, size)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        random_s3d = build_extractor("s3d", "none", device)
    out["s3d_random"] = action_clip_probe(random_s3d, root, size, max_per_split=s3d_clips)
    return out


def main() -> None:
    """Run the chosen measurements and print one JSON document."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--extractor", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--videos", type=int, default=16, help="SynthCook videos to decode / extract")
    parser.add_argument("--network-clips", type=int, default=128, help="clips the network alone is timed on")
    parser.add_argument(
        "--workers", type=int, nargs="*", default=[0, 1, 2], help="worker counts for end to end"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    parser.add_argument("--probe", action="store_true", help="also measure linear-probe accuracies")
    parser.add_argument("--probe-s3d-clips", type=int, default=90, help="clips per split for random S3D")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.preset, args.overrides)
    if args.extractor:
        config.features.extractor = args.extractor
    if args.weights:
        config.features.weights = args.weights
    device = torch.device(args.device)
    root = resolve(GENERATE, config)
    videos = list_videos(root)[0][: args.videos]
    report = {
        "preset": config.name,
        "device": str(device),
        "cpu_cores": os.cpu_count(),
        "extractor": config.features.extractor,
        "weights": config.features.weights,
        "crop_size": config.video.crop_size,
        "clip_frames": config.video.clip_frames,
        "decode": bench_decode(videos, config),
        "network": bench_network(config, device, args.network_clips),
        "end_to_end": [bench_end_to_end(root, args.videos, config, device, w) for w in args.workers],
    }
    decode_rate = report["decode"]["clips_per_s_per_core"]
    report["decode_bound_with_one_worker"] = decode_rate < report["network"]["clips_per_s"]
    report["workers_to_feed_network"] = round(report["network"]["clips_per_s"] / decode_rate, 2)
    if args.probe:
        report["probe"] = bench_probe(root, config, device, args.probe_s3d_clips)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
