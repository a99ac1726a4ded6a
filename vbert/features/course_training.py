"""Training the course's S3D-style network on SynthCook's labelled action clips (`vbert train-extractor`).

This plays the role of Kinetics pre-training: SynthCook's single-action clips, each with a verb and
a noun label, two linear heads on the pooled 1024-d vector, cross-entropy on both, random crops of
several sizes so that every preset's crop gives meaningful features.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vbert.config import add_config_arguments, config_from_args
from vbert.core.device import seed_everything
from vbert.core.progress import progress
from vbert.core.stages import resolve
from vbert.data.synthcook import load_action_clips
from vbert.data.synthcook.generate import STAGE as GENERATE
from vbert.data.video import read_clips
from vbert.errors import DataError
from vbert.features.course_s3d import (
    CHECKPOINT_NAME,
    INPUT_MEAN,
    INPUT_STD,
    CourseS3D,
    CourseS3DConfig,
    load_checkpoint,
    normalise,
    save_checkpoint,
)
from vbert.features.probe import linear_probe

# ---------------------------------------------------------------- training data


def load_labelled_clips(
    root: str | Path, size: int, fps: float = 20.0, clip_frames: int = 30
) -> dict[str, Any]:
    """Decode SynthCook's action clips: {'train'/'val': (clips uint8 [N, T, S, S, 3], verb ids, noun ids)}."""
    items = load_action_clips(root)
    verbs = sorted({c.verb for c in items})
    nouns = sorted({c.noun for c in items})
    split: dict[str, tuple[list, list, list]] = {"train": ([], [], []), "val": ([], [], [])}
    skipped = []
    for item in items:
        try:
            clips = read_clips(item.path, fps=fps, clip_frames=clip_frames, size=size)
        except DataError as err:
            skipped.append(str(err))
            continue
        if len(clips.frames) == 0:
            skipped.append(f"{item.path}: shorter than one clip")
            continue
        frames, vs, ns = split["train" if item.subset == "training" else "val"]
        frames.append(clips.frames[0])  # [T, S, S, 3]: one clip per labelled action
        vs.append(verbs.index(item.verb))
        ns.append(nouns.index(item.noun))
    out: dict[str, Any] = {"verbs": verbs, "nouns": nouns, "skipped": skipped}
    for name, (frames, vs, ns) in split.items():
        if not frames:
            raise DataError(f"{root}: no decodable {name} action clips")
        out[name] = (np.stack(frames), np.array(vs), np.array(ns))
    return out


def augment(
    clips: torch.Tensor,
    size: int,
    generator: torch.Generator,
    min_crop: float = 0.6,
    frames: int | None = None,
) -> torch.Tensor:
    """Random crop (`min_crop`-100% of the side) and time window resized to `size`: uint8 [N, T, S, S, 3] -> float [N, 3, T', size, size]."""
    n, t, s = clips.shape[:3]
    frames = min(frames or t, t)
    out = []
    for clip in clips:
        t0 = int(torch.randint(0, t - frames + 1, (1,), generator=generator))
        clip = clip[t0 : t0 + frames]
        side = int(s * (min_crop + (1 - min_crop) * torch.rand(1, generator=generator).item()))
        y, x = (torch.randint(0, s - side + 1, (2,), generator=generator)).tolist()
        crop = clip[:, y : y + side, x : x + side].permute(0, 3, 1, 2).float()  # [T, 3, side, side]
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False))
    x = torch.stack(out).permute(0, 2, 1, 3, 4) / 255.0  # [N, 3, T, size, size]
    mean = torch.tensor(INPUT_MEAN, device=x.device).view(1, 3, 1, 1, 1)
    std = torch.tensor(INPUT_STD, device=x.device).view(1, 3, 1, 1, 1)
    return (x - mean) / std


def resize_clips(clips: np.ndarray, size: int) -> torch.Tensor:
    """Resize uint8 clips [N, T, S, S, 3] to [N, T, size, size, 3] (bilinear), still uint8."""
    x = torch.from_numpy(clips)
    if x.shape[2] == size:
        return x
    n, t, s = x.shape[:3]
    frames = x.reshape(n * t, s, s, 3).permute(0, 3, 1, 2).float()
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
    return frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).reshape(n, t, size, size, 3)


def action_clip_probe(
    extractor: Any, root: str | Path, size: int, max_per_split: int | None = None
) -> dict[str, float]:
    """Linear-probe accuracy (verb, noun) of `extractor`'s features: fit on training clips, score on validation."""
    data = load_labelled_clips(root, size)
    out: dict[str, float] = {}
    feats = {}
    for split in ("train", "val"):
        clips, verbs, nouns = data[split]
        keep = np.random.default_rng(0).permutation(len(clips))[
            :max_per_split
        ]  # a random subset, all classes
        feats[split] = (extractor(clips[keep]), verbs[keep], nouns[keep])  # [N, 1024]
    (tx, tv, tn), (vx, vv, vn) = feats["train"], feats["val"]
    out["verb"] = linear_probe(tx, tv, vx, vv)
    out["noun"] = linear_probe(tx, tn, vx, vn)
    out["train_clips"], out["val_clips"] = len(tx), len(vx)
    return out


# ---------------------------------------------------------------- training


@dataclass
class TrainSettings:
    """How the course network is trained (all recorded in the checkpoint)."""

    steps: int = 1200
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    sizes: tuple[int, ...] = (48, 64, 96)  # training crop sizes, so every preset's crop works
    decode_size: int = 96  # clips are decoded once at this size, then randomly cropped
    label_smoothing: float = 0.1
    seed: int = 0
    log_every: int = 50
    min_crop: float = 0.6  # random crops cover 60-100% of the decoded side
    train_frames: int = 30  # a random window of this many frames per clip (fewer is cheaper)
    init: str = ""  # start from this checkpoint (continue training) instead of random weights
    device: str = "cpu"  # "cuda" trains on a GPU: the decoded clips are copied there once


def evaluate(
    model: CourseS3D, clips: np.ndarray, verbs: np.ndarray, nouns: np.ndarray, size: int
) -> dict[str, float]:
    """Head accuracies of `model` on uint8 clips resized to `size` (on the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    correct_v = correct_n = 0
    with torch.inference_mode():
        for i in range(0, len(clips), 32):
            x = normalise(resize_clips(clips[i : i + 32], size).to(device))
            verb_logits, noun_logits = model(x)
            correct_v += int((verb_logits.argmax(1).cpu().numpy() == verbs[i : i + 32]).sum())
            correct_n += int((noun_logits.argmax(1).cpu().numpy() == nouns[i : i + 32]).sum())
    return {"verb_acc": correct_v / len(clips), "noun_acc": correct_n / len(clips)}


def train_course_extractor(
    root: str | Path,
    out_path: str | Path,
    settings: TrainSettings,
    command: str = "",
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train CourseS3D on the action clips under SynthCook folder `root`; save to `out_path`; return metrics."""
    seed_everything(settings.seed)
    data = load_labelled_clips(root, settings.decode_size)
    train_clips, train_v, train_n = data["train"]
    model = CourseS3D(CourseS3DConfig(verbs=data["verbs"], nouns=data["nouns"]))
    if settings.init:
        model = load_checkpoint(settings.init)
        if (model.config.verbs, model.config.nouns) != (data["verbs"], data["nouns"]):
            raise DataError(f"{settings.init}: trained on other verbs/nouns than the clips under {root}")
    device = torch.device(settings.device)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)

    def lr_at(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        done = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    generator = torch.Generator().manual_seed(settings.seed)
    clips_t = torch.from_numpy(train_clips).to(device)  # [N, T, S, S, 3] uint8
    verbs_t, nouns_t = torch.from_numpy(train_v).to(device), torch.from_numpy(train_n).to(device)
    history, start = [], time.perf_counter()
    bar = progress(
        range(settings.steps), desc="train-extractor", **({} if show_progress else {"disable": True})
    )
    for step in bar:
        model.train()
        idx = torch.randint(0, len(clips_t), (settings.batch_size,), generator=generator).to(device)
        size = settings.sizes[step % len(settings.sizes)]
        x = augment(
            clips_t[idx], size, generator, settings.min_crop, settings.train_frames
        )  # [B, 3, T', S, S]
        verb_logits, noun_logits = model(x)
        loss = F.cross_entropy(verb_logits, verbs_t[idx], label_smoothing=settings.label_smoothing)
        loss = loss + F.cross_entropy(noun_logits, nouns_t[idx], label_smoothing=settings.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % settings.log_every == 0 or step == settings.steps - 1:
            history.append({"step": step, "loss": round(loss.item(), 4)})
            bar.set_postfix(loss=f"{loss.item():.3f}")
    val_clips, val_v, val_n = data["val"]
    metrics = {
        "train_seconds": round(time.perf_counter() - start, 1),
        "train_clips": len(train_clips),
        "val_clips": len(val_clips),
        "val": {str(s): evaluate(model, val_clips, val_v, val_n, s) for s in (64, 96, 112)},
        "history": history,
    }
    save_checkpoint(
        model.cpu(), out_path, settings=_jsonable(asdict(settings)), metrics=metrics, command=command
    )
    return metrics


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


# ---------------------------------------------------------------- `vbert train-extractor`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert train-extractor`."""
    add_config_arguments(parser)
    defaults = TrainSettings()
    parser.add_argument(
        "--data", default=None, help="SynthCook folder (default: generate/reuse the preset's)"
    )
    parser.add_argument(
        "--out",
        default="runs/extractor/" + CHECKPOINT_NAME,
        help=f"checkpoint to write (default: runs/extractor/{CHECKPOINT_NAME})",
    )
    parser.add_argument(
        "--steps", type=int, default=defaults.steps, help=f"training steps (default: {defaults.steps})"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help=f"clips per step (default: {defaults.batch_size})",
    )
    parser.add_argument(
        "--lr", type=float, default=defaults.lr, help=f"learning rate (default: {defaults.lr})"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(defaults.sizes), help="training crop sizes"
    )
    parser.add_argument(
        "--min-crop", type=float, default=defaults.min_crop, help="smallest random crop (fraction)"
    )
    parser.add_argument(
        "--train-frames", type=int, default=defaults.train_frames, help="frames per training window"
    )
    parser.add_argument("--init", default="", help="continue from this checkpoint")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu (default) or cuda (a GPU trains the same network much faster)"
    )


def main(args: argparse.Namespace) -> int:
    """Train the course extractor from the command line and print its validation accuracies."""
    if args.threads:
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    root = Path(args.data) if args.data else resolve(GENERATE, config)
    settings = TrainSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        sizes=tuple(args.sizes),
        seed=config.seed,
        min_crop=args.min_crop,
        train_frames=args.train_frames,
        init=args.init,
        device=args.device,
    )
    command = ["vbert", "train-extractor", "--preset", args.preset]
    command += [f"--set={o}" for o in args.overrides]
    command += ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr)]
    command += ["--sizes", *map(str, args.sizes), "--min-crop", str(args.min_crop)]
    command += ["--train-frames", str(args.train_frames)] + (["--init", args.init] if args.init else [])
    command += ["--device", args.device] if args.device != "cpu" else []
    command += ["--out", args.out]
    metrics = train_course_extractor(root, args.out, settings, command=" ".join(command))
    for size, acc in metrics["val"].items():
        print(f"crop {size:>3}: verb accuracy {acc['verb_acc']:.3f}, noun accuracy {acc['noun_acc']:.3f}")
    print(f"checkpoint: {args.out} ({metrics['train_seconds']} s)")
    return 0
