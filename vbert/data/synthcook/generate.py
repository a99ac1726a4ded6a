"""Write a SynthCook folder: videos, narrations, YouCook2-format annotations, action clips.

Generation is resumable (a finished .mp4 is kept; files appear atomically), runs in a few
worker processes, records failures and carries on, and ends with a complete manifest.
Also the `vbert generate` command and the pipeline's "generate" stage (`STAGE`), which
`vbert.core.stages.resolve` builds once per data settings and seed into the stage cache for
notebooks and tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2

from vbert.config import Config, add_config_arguments, config_from_args
from vbert.core.device import usable_cpus
from vbert.core.manifest import (
    MANIFEST,
    atomic_write_json,
    is_complete,
    json_hash,
    read_manifest,
    write_manifest,
)
from vbert.core.progress import progress, quiet
from vbert.core.stages import Stage
from vbert.data.dataset import Failure
from vbert.data.synthcook.narration import narrate
from vbert.data.synthcook.plan import ActionClipPlan, VideoPlan, plan_action_clips, plan_video
from vbert.data.synthcook.render import TimelineItem, render_timeline
from vbert.data.synthcook.world import check_world, world_dict
from vbert.data.video import probe, write_video
from vbert.errors import DataError

GENERATOR_VERSION = 6  # bump when rendering or narration changes, so caches are rebuilt


def generation_key(config: Config) -> dict[str, Any]:
    """What a SynthCook folder depends on: the data section, the seed and the generator version."""
    return {"data": config.to_dict()["data"], "seed": config.seed, "generator": GENERATOR_VERSION}


def video_plans(config: Config) -> list[VideoPlan]:
    """Plans of every training and validation video of this config."""
    data = config.data
    return [plan_video(config.seed, "training", i, data) for i in range(data.num_train_videos)] + [
        plan_video(config.seed, "validation", i, data) for i in range(data.num_val_videos)
    ]


def timeline(plan: VideoPlan) -> list[TimelineItem]:
    """The plan as what is on screen: idle pauses (showing the next ingredient) and the steps."""
    items, t = [], 0.0
    for step in plan.steps:
        if step.start > t:
            items.append(TimelineItem("idle", step.noun, t, step.start))
        items.append(TimelineItem(step.verb, step.noun, step.start, step.end, step.occluded))
        t = step.end
    items.append(TimelineItem("idle", plan.steps[-1].noun, t, plan.duration + 1.0))
    return items


def _finished(path: Path, frames: int) -> bool:
    """True when `path` is a readable video with the expected number of frames (resume check)."""
    try:
        return path.is_file() and probe(path).frame_count == frames
    except DataError:
        return False


# What a SynthCook folder holds; a folder with anything else is not one (and is never written over or deleted).
DATASET_ENTRIES = {
    "videos",
    "action_clips",
    "annotations.json",
    "narrations.json",
    "action_clips.json",
    "world.json",
    MANIFEST,
}


def check_dataset_folder(root: Path) -> None:
    """Refuse a folder that holds files other than a SynthCook dataset's (before writing or deleting)."""
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: is a file, not a folder for a SynthCook dataset")
    others = sorted(p.name for p in root.iterdir() if p.name not in DATASET_ENTRIES) if root.is_dir() else []
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise DataError(
            f"{root}: holds files that are not part of a SynthCook dataset ({shown}); "
            "generate into an empty or new folder"
        )


def remove_dataset(root: Path) -> None:
    """Delete a SynthCook folder (for --force), after checking that it is one."""
    check_dataset_folder(root)
    if root.exists():
        shutil.rmtree(root)


def _rendered_under(root: Path) -> str | None:
    """The config hash of the settings the files in `root` were rendered with (None: unknown)."""
    try:
        return json.loads((root / MANIFEST).read_text(encoding="utf-8")).get("config_hash")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _render_job(job: dict[str, Any]) -> tuple[str, str | None]:
    """Render one video or action clip into its file (atomically); return (id, error or None)."""
    cv2.setNumThreads(1)
    path = Path(job["path"])
    try:
        frames = render_timeline(
            job["items"], job["duration"], job["width"], job["height"], job["fps"], job["seed"]
        )
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        write_video(tmp, frames, job["fps"])
        os.replace(tmp, path)
        return job["id"], None
    except Exception as err:  # a batch job records what failed and goes on
        return job["id"], f"{type(err).__name__}: {err}"


def _video_job(plan: VideoPlan, root: Path, config: Config) -> dict[str, Any]:
    data = config.data
    return {
        "id": plan.video_id,
        "path": str(root / "videos" / f"{plan.video_id}.mp4"),
        "items": timeline(plan),
        "duration": plan.duration,
        "width": data.width,
        "height": data.height,
        "fps": data.fps,
        "seed": plan.seed + [1],
    }


def _clip_job(clip: ActionClipPlan, root: Path, config: Config) -> dict[str, Any]:
    data = config.data
    length = data.action_clip_seconds
    item = TimelineItem(clip.verb, clip.noun, -clip.offset, length + 1.0)  # the clip starts `offset` s in
    return {
        "id": clip.clip_id,
        "path": str(root / "action_clips" / f"{clip.clip_id}.mp4"),
        "items": [item],
        "duration": length,
        "width": data.width,
        "height": data.height,
        "fps": data.fps,
        "seed": clip.seed,
    }


def annotation_entry(plan: VideoPlan) -> dict[str, Any]:
    """The YouCook2-format entry of one video (each annotation also carries its verb and noun)."""
    return {
        "duration": plan.duration,
        "subset": plan.subset,
        "recipe_type": plan.recipe,
        "video_url": f"synthcook://{plan.video_id}",
        "annotations": [
            {
                "id": i,
                "segment": [s.start, s.end],
                "sentence": s.sentence,
                "sentences": s.references,
                "verb": s.verb,
                "noun": s.noun,
                "occluded": s.occluded,
            }
            for i, s in enumerate(plan.steps)
        ],
    }


def generate_synthcook(
    out_dir: str | Path, config: Config, show_progress: bool = True, workers: int | None = None
) -> Path:
    """Generate (or finish generating) the SynthCook dataset of `config` into `out_dir`."""
    check_world()
    root = Path(out_dir)
    check_dataset_folder(root)
    key = generation_key(config)
    if is_complete(root, key):
        return root
    started = time.perf_counter()
    if _rendered_under(root) not in (None, json_hash(key)):  # other data settings, seed or generator
        print(
            f"[vbert generate] {root}: its videos were rendered with other settings; rendering again",
            flush=True,
        )
        for folder in ("videos", "action_clips"):
            shutil.rmtree(root / folder, ignore_errors=True)
    for folder in ("videos", "action_clips"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for stale in (root / folder).glob(".tmp-*"):  # left by an interrupted run
            stale.unlink()
    plans = video_plans(config)
    clips = plan_action_clips(config.seed, config.data)
    jobs = [_video_job(p, root, config) for p in plans] + [_clip_job(c, root, config) for c in clips]
    fps = config.data.fps
    todo = [j for j in jobs if not _finished(Path(j["path"]), max(1, int(round(j["duration"] * fps))))]
    write_manifest(root, "generate", key, complete=False)  # the files rendered from here on are this key's
    workers = max(1, min(workers or usable_cpus(), len(todo) or 1))  # rendering is CPU-bound
    errors: dict[str, str] = {}
    bar = progress(
        total=len(jobs),
        initial=len(jobs) - len(todo),
        desc="synthcook",
        unit="video",
        disable=not show_progress or quiet(),
    )
    if workers == 1:
        results = map(_render_job, todo)
        for item_id, error in results:
            if error:
                errors[item_id] = error
            bar.update(1)
    else:
        # forkserver: workers forked from a fresh process, not from this one, whose OpenCV or torch
        # threads (a caller that decoded video first) would leave a forked child blocked on their locks
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
        ) as pool:
            for item_id, error in pool.map(_render_job, todo, chunksize=2):
                if error:
                    errors[item_id] = error
                bar.update(1)
    bar.close()
    good_plans = [p for p in plans if p.video_id not in errors]
    good_clips = [c for c in clips if c.clip_id not in errors]
    atomic_write_json(
        root / "annotations.json", {"database": {p.video_id: annotation_entry(p) for p in good_plans}}
    )
    atomic_write_json(root / "narrations.json", {p.video_id: narrate(p) for p in good_plans})
    atomic_write_json(
        root / "action_clips.json",
        [
            {
                "id": c.clip_id,
                "path": f"action_clips/{c.clip_id}.mp4",
                "verb": c.verb,
                "noun": c.noun,
                "subset": c.subset,
            }
            for c in good_clips
        ],
    )
    atomic_write_json(root / "world.json", world_dict())
    failures = [Failure(item, reason).to_dict() for item, reason in sorted(errors.items())]
    write_manifest(
        root,
        "generate",
        key,
        failures=failures,
        complete=True,
        videos=len(good_plans),
        action_clips=len(good_clips),
        seconds=round(sum(p.duration for p in good_plans), 1),
        build_seconds=round(time.perf_counter() - started, 1),
    )
    return root


def run_stage(config: Config, inputs: dict[str, Path], out: Path, force: bool) -> dict[str, Any]:
    """The "generate" stage: write SynthCook into `out` (it reads nothing) and summarise it."""
    if force:
        remove_dataset(out)
    generate_synthcook(out, config)
    manifest = read_manifest(out)
    return {
        "videos": manifest["videos"],
        "action_clips": manifest["action_clips"],
        "seconds": manifest["seconds"],
        "failures": len(manifest["failures"]),
    }


STAGE = Stage(
    "generate",
    "SynthCook videos, narration and ground truth (vbert.data.synthcook)",
    run_stage,
    folder="synthcook",
    key=generation_key,
    code=("vbert.data",),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert generate`."""
    add_config_arguments(parser)
    parser.add_argument("--out", default="runs/synthcook", help="output folder (default: runs/synthcook)")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: the CPU cores it may use)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="delete the dataset in --out (only a SynthCook folder) and generate again",
    )


def main(args: argparse.Namespace) -> int:
    """Generate SynthCook from the command line and print a summary."""
    config = config_from_args(args)
    out = Path(args.out)
    if args.force:
        remove_dataset(out)
    start = time.perf_counter()
    generate_synthcook(out, config, workers=args.workers)
    manifest = read_manifest(out)
    print(
        f"{out}: {manifest['videos']} videos ({manifest['seconds']:.0f} s of video), "
        f"{manifest['action_clips']} action clips, {len(manifest['failures'])} failures, "
        f"{time.perf_counter() - start:.1f} s"
    )
    for failure in manifest["failures"]:
        print(f"  failed: {failure['item']}: {failure['reason']}")
    return 0
