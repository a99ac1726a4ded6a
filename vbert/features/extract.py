"""`vbert extract`: every video -> 30-frame clips -> one 1024-d vector per clip, in float16 shards.

Decoding (OpenCV) runs in DataLoader worker processes while the network runs in the main
process, so with enough workers the network never waits for frames. Features go through
`vbert.features.store.FeatureWriter`: a video is finished once the shard holding it has its
index on disk. A re-run skips finished videos, so a killed run resumes losing at most the
shard it was filling. Under torchrun, rank r takes videos r, r + W, r + 2W, ... and writes
`shard-r{r}-*`; the last rank to finish checks that every video is accounted for and writes
the manifest, and `FeatureStore` merges all ranks' shards into one index.

Videos that cannot be decoded or are shorter than one clip are recorded in the manifest's
`failures` and skipped, and so are those found unusable while listing: annotation entries that
cannot be read, annotated videos without a file, and a video id two files claim (a.mp4, a.mkv).
A run that extracts no video at all is an error, not a finished folder.
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

from vbert.config import Config, add_config_arguments, config_from_args
from vbert.core.device import select_device
from vbert.core.distributed import launched_world_size
from vbert.core.manifest import (
    atomic_write_json,
    file_lock,
    is_complete,
    json_hash,
    read_json,
    read_manifest,
    write_manifest,
)
from vbert.core.progress import progress
from vbert.core.stages import Stage, resolve
from vbert.data.dataset import Failure, VideoDataset
from vbert.data.synthcook.generate import STAGE as GENERATE
from vbert.data.video import VIDEO_SUFFIXES, read_clips
from vbert.data.youcook2 import load_youcook2
from vbert.errors import DataError
from vbert.features.extractors import build_extractor, weights_identity
from vbert.features.store import FeatureStore, FeatureWriter, _read_index, shard_indexes

SPEC_FILE = "extract-spec.json"


class ClipDecoding(Dataset):
    """Video i -> {'video_id', 'frames' uint8 [n, T, S, S, 3], 'starts', 'ends', 'error'} (decoded in a worker)."""

    def __init__(self, videos: list[tuple[str, Path]], fps: float, clip_frames: int, size: int) -> None:
        self.videos, self.fps, self.clip_frames, self.size = videos, fps, clip_frames, size

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        video_id, path = self.videos[i]
        try:
            clips = read_clips(path, fps=self.fps, clip_frames=self.clip_frames, size=self.size)
        except DataError as err:
            return {"video_id": video_id, "error": str(err)}
        return {
            "video_id": video_id,
            "frames": clips.frames,
            "starts": clips.starts,
            "ends": clips.ends,
            "error": None,
        }


def _single_thread_worker(_: int) -> None:
    """Each decoding worker uses one thread, so W workers use W cores."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def default_video_dir(annotation_file: str | Path) -> Path:
    """Where the videos of an annotation file are looked for: the `videos/` folder beside it, else its own folder."""
    folder = Path(annotation_file).parent
    return folder / "videos" if (folder / "videos").is_dir() else folder


def _video_files(folder: Path, recursive: bool) -> list[Path]:
    """The video files in `folder` (and its subfolders when `recursive`), hidden files left out."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return [
        p
        for p in sorted(found)
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() and not p.name.startswith(".")
    ]


def _same_stem(files: list[Path]) -> dict[str, list[Path]]:
    """Video ids (file stems) that more than one of `files` would give, with those files."""
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    return {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}


def _same_stem_failure(video_id: str, files: list[Path]) -> dict[str, str]:
    """The failure of a video id that several files claim: none of them is extracted."""
    names = " and ".join(str(f) for f in files)
    return Failure(video_id, f"{names}: {len(files)} video files for one video id (keep one)").to_dict()


def list_videos(
    source: VideoDataset | str | Path, video_dir: str | Path | None = None
) -> tuple[list[tuple[str, Path]], list[dict]]:
    """(video id, path) pairs of a dataset, a video folder (or SynthCook folder), one video file or a YouCook2 annotation file.

    The failures found while listing come with them: the dataset's own (entries it could not
    load), annotated videos without a file, and video ids that two files claim (a.mp4, a.mkv).
    An annotation file's videos are looked for in `video_dir` (default: `default_video_dir`).
    """
    failures: list[dict] = []
    if isinstance(source, VideoDataset):
        if video_dir is not None:
            raise DataError(
                f"{video_dir}: a video folder is only used with a YouCook2 annotation file, not a dataset"
            )
        failures += [f.to_dict() for f in source.failures]
        pairs = []
        for video_id, record in sorted(source.videos.items()):
            if record.path is None:
                failures.append(Failure(video_id, "no video file for this annotation").to_dict())
            else:
                pairs.append((video_id, Path(record.path)))
        return pairs, failures
    path = Path(source)
    if path.is_file() and path.suffix == ".json":
        video_dir = Path(video_dir) if video_dir is not None else default_video_dir(path)
        pairs, failures = list_videos(load_youcook2(path, video_dir=video_dir))
        clashes = _same_stem(_video_files(video_dir, recursive=True))
        failures += [_same_stem_failure(v, clashes[v]) for v, _ in pairs if v in clashes]
        pairs = [(v, p) for v, p in pairs if v not in clashes]
        if not pairs:
            first = f"; first: {failures[0]['reason']}" if failures else ""
            raise DataError(
                f"{path}: no video to extract: none of its {len(failures)} videos has a usable file "
                f"in {video_dir} (--video-dir names another folder){first}"
            )
        return pairs, failures
    if video_dir is not None:
        raise DataError(
            f"{video_dir}: a video folder is only used with a YouCook2 annotation file, not with {path}"
        )
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:  # one video: its id is the file's stem
        return [(path.stem, path)], failures
    if not path.is_dir():
        raise DataError(
            f"{path}: expected a video file ({', '.join(VIDEO_SUFFIXES)}), a folder of videos, a SynthCook "
            "folder or a YouCook2 annotation file" + ("" if path.exists() else " (nothing is there)")
        )
    folder = path / "videos" if (path / "videos").is_dir() else path
    files = _video_files(folder, recursive=False)
    if not files:
        raise DataError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)}) here")
    clashes = _same_stem(files)
    failures += [_same_stem_failure(stem, clashes[stem]) for stem in sorted(clashes)]
    return [(p.stem, p) for p in files if p.stem not in clashes], failures


def extraction_spec(config: Config) -> dict[str, Any]:
    """Everything that decides the feature values: decoding settings and the extractor's weights."""
    identity = weights_identity(config.features.extractor, config.features.weights)
    if config.features.weights == "none":
        identity["init_seed"] = config.seed  # random weights are fixed by the seed
    return {"video": dataclasses.asdict(config.video), "features": identity}


def _dist_info() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), launched_world_size()


def _finished_videos(out_dir: Path) -> set[str]:
    """Video ids held by finished shards of any rank (an index file exists)."""
    return {row[0] for index in shard_indexes(out_dir) for row in _read_index(index)["rows"]}


def _check_spec(out_dir: Path, spec: dict[str, Any], force: bool) -> None:
    """Start a fresh folder, or refuse to mix shards made with another config (unless `force`)."""
    path = out_dir / SPEC_FILE
    if path.is_file() and not force:
        try:
            old = read_json(path)
        except DataError as err:
            raise DataError(f"{err}; use another folder or --force to start over") from None
        if old == spec:
            return
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
    out_dir = Path(out_dir)
    videos, failures = list_videos(source, video_dir)
    name = "the dataset" if isinstance(source, VideoDataset) else str(source)
    if not videos:
        first = f"; first: {failures[0]['item']}: {failures[0]['reason']}" if failures else ""
        raise DataError(f"{name}: no video to extract ({len(failures)} failures{first})")
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder (the features go into a folder)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"{out_dir}: cannot create the features folder ({err.strerror or err})") from None
    env_rank, env_world = _dist_info()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    spec = extraction_spec(config)
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
    chosen = select_device(None if device is None else str(device))  # default: $VBERT_DEVICE, else auto
    if device is None and chosen.type == "cuda" and chosen.index is None:  # this rank's own GPU
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    extractor = build_extractor(config.features.extractor, config.features.weights, chosen, config.seed)
    writer = FeatureWriter(out_dir, extractor.dim, rank=rank, shard_size=shard_size)
    workers = config.features.num_workers
    loader = DataLoader(
        ClipDecoding(todo, config.video.fps, config.video.clip_frames, config.video.crop_size),
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_single_thread_worker if workers else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
        # forkserver: workers start from a fresh process, not forked from this one, whose OpenCV
        # threads (a caller that decoded video first) would leave a forked worker blocked on their locks
        multiprocessing_context="forkserver" if workers else None,
    )
    my_failures: list[dict] = []  # decoding failures of this rank's videos (listing failures: see _finalize)
    pending: list[dict[str, Any]] = []  # decoded videos waiting for a full network batch

    def run_pending() -> None:
        frames = np.concatenate([np.asarray(item["frames"]) for item in pending])  # [n, T, S, S, 3]
        vectors = extractor(frames, batch_size=config.features.batch_size)  # [n, 1024]
        offset = 0
        for item in pending:
            n = len(item["frames"])
            writer.add(
                item["video_id"], vectors[offset : offset + n], list(item["starts"]), list(item["ends"])
            )
            offset += n
        pending.clear()

    desc = f"extract (rank {rank})" if world_size > 1 else "extract"
    for item in progress(
        loader, total=len(todo), desc=desc, unit="video", **({} if show_progress else {"disable": True})
    ):
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
    error = None
    try:
        _finalize(out_dir, spec, inputs, videos, failures, world_size, name)
    except DataError as err:
        error = err  # raised once every rank has reached the barrier, so none waits for ever
    if distributed:
        torch.distributed.barrier()
    if error is not None:
        raise error
    return out_dir


def _finalize(
    out_dir: Path,
    spec: dict,
    inputs: dict,
    videos: list[tuple[str, Path]],
    listed: list[dict],
    world_size: int,
    name: str,
) -> None:
    """When every rank is done: check the shards cover every video (or its failure), write the manifest.

    `listed` are the failures found while listing the videos (the same on every rank): recorded
    once, here, by the rank that finishes last. If no video at all was extracted, the manifest
    is written incomplete (with the failures) and a DataError names the input `name`.
    """
    import json

    with file_lock(out_dir / ".finalize.lock"):
        done_files = [out_dir / f"done-r{r}.json" for r in range(world_size)]
        reports = [json.loads(p.read_text(encoding="utf-8")) for p in done_files if p.is_file()]
        if len(reports) < world_size or any(r["world_size"] != world_size for r in reports):
            return  # another rank is still working; the last one to finish writes the manifest
        failures = listed + [f for r in reports for f in r["failures"]]
        store = FeatureStore(out_dir)
        covered = set(store.videos()) | {f["item"] for f in failures}
        missing = [v for v, _ in videos if v not in covered]
        if missing:
            raise DataError(
                f"{out_dir}: {len(missing)} videos have neither features nor a recorded failure (first: {missing[0]})"
            )
        outputs = {"videos": len(store.videos()), "clips": len(store), "dim": store.dim}
        complete = bool(store.videos())
        write_manifest(
            out_dir,
            "extract",
            spec,
            inputs=inputs,
            outputs=outputs,
            failures=failures,
            complete=complete,
            world_size=world_size,
        )
        if not complete:
            first = failures[0]
            raise DataError(
                f"{name}: no video could be extracted ({len(failures)} failures, listed in "
                f"{out_dir / 'manifest.json'}; first: {first['item']}: {first['reason']})"
            )


def summarize(out_dir: str | Path) -> dict[str, Any]:
    """A short summary of a finished features folder (for `vbert run`'s report)."""
    manifest = read_manifest(out_dir)
    return {
        **manifest["outputs"],
        "failures": len(manifest["failures"]),
        "extractor": manifest["config"]["features"],
    }


def run_stage(config: Config, inputs: dict[str, Path], out: Path, force: bool) -> dict[str, Any]:
    """The "extract" stage: the features of the videos of the "generate" stage's folder, into `out`."""
    if not force and (out / SPEC_FILE).is_file():
        try:
            force = read_json(out / SPEC_FILE) != extraction_spec(
                config
            )  # other decoding or extractor settings
        except DataError:
            force = True  # unreadable: the run's own folder is made again
        if force:
            print(
                f"[vbert run] extract: {out} holds features made with other settings; extracting again",
                flush=True,
            )
    extract_features(inputs["generate"], out, config, force=force, rank=0, world_size=1)
    return summarize(out)


def extract_key(config: Config) -> dict[str, Any]:
    """What decides a features folder besides its videos: the seed, decoding and extractor settings."""
    return {"seed": config.seed, **extraction_spec(config)}


STAGE = Stage(
    "extract",
    "clips -> 1024-d features (vbert.features)",
    run_stage,
    folder="features",
    needs=(GENERATE,),
    key=extract_key,
    code=("vbert.features", "vbert.data.video"),
)


# ---------------------------------------------------------------- `vbert extract`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert extract`."""
    add_config_arguments(parser)
    parser.add_argument(
        "source",
        nargs="?",
        default=None,
        help="video file, video folder, SynthCook folder or YouCook2 annotation file (default: the preset's "
        "SynthCook)",
    )
    parser.add_argument(
        "--video-dir",
        default=None,
        help="videos of an annotation file, subfolders included "
        "(default: the videos/ folder next to it, else the folder it is in)",
    )
    parser.add_argument("--out", default="runs/features", help="features folder (default: runs/features)")
    parser.add_argument("--extractor", default=None, help="course, s3d or resnet (default: the preset's)")
    parser.add_argument(
        "--weights", default=None, help="default, kinetics400, imagenet1k, none, or a weight file"
    )
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:N (default: $VBERT_DEVICE, else cuda:LOCAL_RANK when present)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="clips per network batch")
    parser.add_argument("--num-workers", type=int, default=None, help="decoding worker processes")
    parser.add_argument("--shard-size", type=int, default=512, help="clips per shard file")
    parser.add_argument("--force", action="store_true", help="discard existing shards and start over")


def main(args: argparse.Namespace) -> int:
    """Extract features from the command line (also under torchrun)."""
    config = config_from_args(args)
    for field, value in (
        ("extractor", args.extractor),
        ("weights", args.weights),
        ("batch_size", args.batch_size),
        ("num_workers", args.num_workers),
    ):
        if value is not None:
            setattr(config.features, field, value)
    started_group = False
    if launched_world_size() > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
        started_group = True
    try:
        if args.source is None:
            source: Any = resolve(GENERATE, config)
        else:
            source = args.source
        out = extract_features(
            source,
            args.out,
            config,
            device=args.device,
            video_dir=args.video_dir,
            shard_size=args.shard_size,
            force=args.force,
        )
    finally:
        if started_group:
            torch.distributed.destroy_process_group()
    rank, _ = _dist_info()
    if rank == 0 or not started_group:
        if is_complete(out):
            summary = summarize(out)
            print(
                f"{out}: {summary['clips']} clips from {summary['videos']} videos, {summary['failures']} failures"
            )
    return 0
