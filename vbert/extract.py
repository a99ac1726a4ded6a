"""`vbert extract`: every video -> 30-frame clips -> one 1024-d vector per clip, in float16 shards.

Decoding (OpenCV) runs in DataLoader worker processes while the network runs in the main
process, so with enough workers the network never waits for frames. Features go through
`vbert.feature_store.FeatureWriter`: a video is finished once the shard holding it has its
index on disk. A re-run skips finished videos, so a killed run resumes losing at most the
shard it was filling. Under torchrun, rank r takes videos r, r + W, r + 2W, ... and writes
`shard-r{r}-*`; the last rank to finish checks that every video is accounted for and writes
the manifest, and `FeatureStore` merges all ranks' shards into one index.

Videos that cannot be decoded or are shorter than one clip are recorded in the manifest's
`failures` and skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vbert.config import Config
from vbert.dataset import VideoDataset
from vbert.errors import DataError
from vbert.manifest import atomic_write_json, file_lock, is_complete, json_hash, read_manifest, write_manifest

SPEC_FILE = "extract-spec.json"


class ClipDecoding(Dataset):
    """Video i -> {'video_id', 'frames' uint8 [n, T, S, S, 3], 'starts', 'ends', 'error'} (decoded in a worker)."""

    def __init__(self, videos: list[tuple[str, Path]], fps: float, clip_frames: int, size: int) -> None:
        self.videos, self.fps, self.clip_frames, self.size = videos, fps, clip_frames, size

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from vbert.video import read_clips

        video_id, path = self.videos[i]
        try:
            clips = read_clips(path, fps=self.fps, clip_frames=self.clip_frames, size=self.size)
        except DataError as err:
            return {"video_id": video_id, "error": str(err)}
        return {"video_id": video_id, "frames": clips.frames, "starts": clips.starts, "ends": clips.ends, "error": None}


def _single_thread_worker(_: int) -> None:
    """Each decoding worker uses one thread, so W workers use W cores."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def list_videos(source: VideoDataset | str | Path, video_dir: str | Path | None = None) -> tuple[list[tuple[str, Path]], list[dict]]:
    """(video id, path) pairs of a dataset, a video folder (or SynthCook folder), or a YouCook2 annotation file."""
    from vbert.video import VIDEO_SUFFIXES

    failures: list[dict] = []
    if isinstance(source, VideoDataset):
        pairs = []
        for video_id, record in sorted(source.videos.items()):
            if record.path is None:
                failures.append({"item": video_id, "reason": "no video file for this annotation"})
            else:
                pairs.append((video_id, Path(record.path)))
        return pairs, failures
    path = Path(source)
    if path.is_file() and path.suffix == ".json":
        from vbert.youcook2 import load_youcook2

        return list_videos(load_youcook2(path, video_dir=video_dir), None)
    if not path.is_dir():
        raise DataError(f"{path}: expected a folder of videos, a SynthCook folder or a YouCook2 annotation file")
    folder = path / "videos" if (path / "videos").is_dir() else path
    pairs = [(p.stem, p) for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]
    if not pairs:
        raise DataError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)}) here")
    return pairs, failures


def extraction_spec(config: Config) -> dict[str, Any]:
    """Everything that decides the feature values: decoding settings and the extractor's weights."""
    from vbert.features import weights_identity

    identity = weights_identity(config.features.extractor, config.features.weights)
    if config.features.weights == "none":
        identity["init_seed"] = config.seed  # random weights are fixed by the seed
    return {"video": dataclasses.asdict(config.video), "features": identity}


def _dist_info() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _finished_videos(out_dir: Path) -> set[str]:
    """Video ids held by finished shards of any rank (an index file exists)."""
    from vbert.feature_store import _read_index

    return {row[0] for index in sorted(out_dir.glob("shard-r*-*.json")) for row in _read_index(index)["rows"]}


def _check_spec(out_dir: Path, spec: dict[str, Any], force: bool) -> None:
    """Start a fresh folder, or refuse to mix shards made with another config (unless `force`)."""
    path = out_dir / SPEC_FILE
    if path.is_file():
        import json

        old = json.loads(path.read_text(encoding="utf-8"))
        if old == spec and not force:
            return
        if not force:
            raise DataError(
                f"{out_dir}: holds features made with different settings ({SPEC_FILE} differs); "
                "use another folder or --force to start over"
            )
    if force:
        for old_file in [*out_dir.glob("shard-r*"), *out_dir.glob("done-r*.json"), out_dir / "manifest.json"]:
            old_file.unlink(missing_ok=True)
    atomic_write_json(path, spec)


def extract_features(
    source: VideoDataset | str | Path,
    out_dir: str | Path,
    config: Config,
    *,
    device: str | torch.device | None = None,
    video_dir: str | Path | None = None,
    shard_size: int = 512,
    rank: int | None = None,
    world_size: int | None = None,
    force: bool = False,
    show_progress: bool = True,
) -> Path:
    """Extract features for every video of `source` into `out_dir` (resumable; one share per rank)."""
    from vbert.device import select_device
    from vbert.feature_store import FeatureWriter
    from vbert.features import build_extractor
    from vbert.progress import progress

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env_rank, env_world = _dist_info()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    spec = extraction_spec(config)
    videos, failures = list_videos(source, video_dir)
    inputs = {"videos": json_hash([[v, str(p.name)] for v, p in videos])}
    if not force and is_complete(out_dir, spec, inputs):
        return out_dir
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    for turn in (0, 1):  # rank 0 first (it alone may wipe a folder on --force), then the others
        if (rank == 0) == (turn == 0):
            with file_lock(out_dir / ".spec.lock"):
                _check_spec(out_dir, spec, force and rank == 0)
        if distributed:
            torch.distributed.barrier()
    mine = videos[rank::world_size]
    done = _finished_videos(out_dir)
    todo = [(v, p) for v, p in mine if v not in done]
    if device is None:
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    extractor = build_extractor(config.features.extractor, config.features.weights, select_device(str(device)), config.seed)
    writer = FeatureWriter(out_dir, extractor.dim, rank=rank, shard_size=shard_size)
    workers = config.features.num_workers
    loader = DataLoader(
        ClipDecoding(todo, config.video.fps, config.video.clip_frames, config.video.crop_size),
        batch_size=None, num_workers=workers, worker_init_fn=_single_thread_worker if workers else None,
        prefetch_factor=4 if workers else None, persistent_workers=False,
    )
    my_failures = [f for f in failures if f["item"] in {v for v, _ in mine}]
    pending: list[dict[str, Any]] = []  # decoded videos waiting for a full network batch

    def run_pending() -> None:
        frames = np.concatenate([np.asarray(item["frames"]) for item in pending])  # [n, T, S, S, 3]
        vectors = extractor(frames, batch_size=config.features.batch_size)  # [n, 1024]
        offset = 0
        for item in pending:
            n = len(item["frames"])
            writer.add(item["video_id"], vectors[offset : offset + n], list(item["starts"]), list(item["ends"]))
            offset += n
        pending.clear()

    desc = f"extract (rank {rank})" if world_size > 1 else "extract"
    for item in progress(loader, total=len(todo), desc=desc, unit="video", **({} if show_progress else {"disable": True})):
        if item["error"] is not None:
            my_failures.append({"item": item["video_id"], "reason": item["error"]})
            atomic_write_json(out_dir / f"failures-r{rank}.json", my_failures)
            continue
        pending.append(item)
        if sum(len(p["frames"]) for p in pending) >= config.features.batch_size:
            run_pending()
    if pending:
        run_pending()
    writer.flush()
    atomic_write_json(out_dir / f"done-r{rank}.json", {"world_size": world_size, "failures": my_failures})
    _finalize(out_dir, spec, inputs, videos, world_size)
    if distributed:
        torch.distributed.barrier()
    return out_dir


def _finalize(out_dir: Path, spec: dict, inputs: dict, videos: list[tuple[str, Path]], world_size: int) -> None:
    """When every rank is done: check the shards cover every video (or its failure), write the manifest."""
    import json

    from vbert.feature_store import FeatureStore

    with file_lock(out_dir / ".finalize.lock"):
        done_files = [out_dir / f"done-r{r}.json" for r in range(world_size)]
        reports = [json.loads(p.read_text(encoding="utf-8")) for p in done_files if p.is_file()]
        if len(reports) < world_size or any(r["world_size"] != world_size for r in reports):
            return  # another rank is still working; the last one to finish writes the manifest
        failures = [f for r in reports for f in r["failures"]]
        store = FeatureStore(out_dir)
        covered = set(store.videos()) | {f["item"] for f in failures}
        missing = [v for v, _ in videos if v not in covered]
        if missing:
            raise DataError(f"{out_dir}: {len(missing)} videos have neither features nor a recorded failure (first: {missing[0]})")
        write_manifest(
            out_dir, "extract", spec, inputs=inputs,
            outputs={"videos": len(store.videos()), "clips": len(store), "dim": store.dim},
            failures=failures, world_size=world_size,
        )


def ensure_features(config: Config) -> Path:
    """The features of the preset's SynthCook videos, extracted once and cached (keyed by what decides them)."""
    from vbert.manifest import cached_stage
    from vbert.synthcook import ensure_synthcook

    root = ensure_synthcook(config)
    key = {"data": dataclasses.asdict(config.data), "seed": config.seed, **extraction_spec(config)}
    return cached_stage("features", key, lambda folder: extract_features(root, folder, config, rank=0, world_size=1))


def summarize(out_dir: str | Path) -> dict[str, Any]:
    """A short summary of a finished features folder (for `vbert run`'s report)."""
    manifest = read_manifest(out_dir)
    return {**manifest["outputs"], "failures": len(manifest["failures"]), "extractor": manifest["config"]["features"]}


def run_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """Pipeline stage: extract the features of run_dir/synthcook's videos into run_dir/features."""
    out = Path(run_dir) / "features"
    extract_features(Path(run_dir) / "synthcook", out, config, force=force, rank=0, world_size=1)
    return summarize(out)


# ---------------------------------------------------------------- `vbert extract`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert extract`."""
    from vbert.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("source", nargs="?", default=None,
                        help="video folder, SynthCook folder or YouCook2 annotation file (default: the preset's SynthCook)")
    parser.add_argument("--video-dir", default=None, help="videos of an annotation file (default: next to it)")
    parser.add_argument("--out", default="runs/features", help="features folder (default: runs/features)")
    parser.add_argument("--extractor", default=None, help="course, s3d or resnet (default: the preset's)")
    parser.add_argument("--weights", default=None, help="default, kinetics400, imagenet1k, none, or a weight file")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda:LOCAL_RANK when present)")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per network batch")
    parser.add_argument("--num-workers", type=int, default=None, help="decoding worker processes")
    parser.add_argument("--shard-size", type=int, default=512, help="clips per shard file")
    parser.add_argument("--force", action="store_true", help="discard existing shards and start over")


def main(args: argparse.Namespace) -> int:
    """Extract features from the command line (also under torchrun)."""
    from vbert.cli import config_from_args

    config = config_from_args(args)
    for field, value in (("extractor", args.extractor), ("weights", args.weights),
                         ("batch_size", args.batch_size), ("num_workers", args.num_workers)):
        if value is not None:
            setattr(config.features, field, value)
    started_group = False
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
        started_group = True
    try:
        if args.source is None:
            from vbert.synthcook import ensure_synthcook

            source: Any = ensure_synthcook(config)
        else:
            source = args.source
        out = extract_features(source, args.out, config, device=args.device, video_dir=args.video_dir,
                               shard_size=args.shard_size, force=args.force)
    finally:
        if started_group:
            torch.distributed.destroy_process_group()
    rank, _ = _dist_info()
    if rank == 0 or not started_group:
        if is_complete(out):
            summary = summarize(out)
            print(f"{out}: {summary['clips']} clips from {summary['videos']} videos, {summary['failures']} failures")
    return 0
