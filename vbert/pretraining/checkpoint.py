"""Training checkpoints: written atomically, read back with `torch.load(weights_only=True)`.

A run folder holds `checkpoints/step-NNNNNNN.pt` files and `checkpoints/latest.json`, which names
the newest complete one. Each checkpoint is written to a temporary file, flushed, and renamed into
place; only then is `latest.json` (also renamed into place) pointed at it. A crash at any moment
therefore leaves the previous checkpoint readable and `latest.json` naming a whole file.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vbert.core.manifest import atomic_write_bytes, atomic_write_json
from vbert.core.weights import read_torch_file
from vbert.errors import DataError

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.json"


def rng_state() -> dict[str, Any]:
    """Every random state a training step touches: Python, NumPy, torch CPU and CUDA."""
    np_state = np.random.get_state()
    return {
        "python": _to_lists(random.getstate()),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured (CUDA states only when the GPU count matches)."""
    random.setstate(_to_tuples(state["python"]))
    npy = state["numpy"]
    np.random.set_state(
        ("MT19937", npy["key"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(obj: Any) -> Any:
    return [_to_lists(x) for x in obj] if isinstance(obj, (tuple, list)) else obj


def _to_tuples(obj: Any) -> Any:
    return tuple(_to_tuples(x) for x in obj) if isinstance(obj, list) else obj


def checkpoint_name(step: int) -> str:
    """The file name of the checkpoint of `step` in a run folder's checkpoints/ folder."""
    return f"step-{step:07d}.pt"


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Atomically write `state` as the checkpoint of `step`, point `latest.json` at it, prune old ones."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_name(step)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    atomic_write_json(folder / LATEST, {"step": step, "file": path.name})
    if keep > 0:
        older = sorted(p for p in folder.glob("step-*.pt") if p != path)
        for stale in older[: max(0, len(older) - (keep - 1))]:
            stale.unlink(missing_ok=True)
    return path


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run folder, or None when it has none."""
    pointer = Path(run_dir) / CHECKPOINT_DIR / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["file"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(f"{pointer}: unreadable checkpoint pointer ({err})") from None
    path = pointer.parent / Path(name).name  # never follow a path out of the folder
    if not path.is_file():
        raise DataError(f"{pointer}: names {name}, which does not exist")
    return path


def clear_checkpoints(run_dir: str | Path) -> None:
    """Remove a run folder's checkpoints and its `latest.json` (a new run starts in the folder)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    (folder / LATEST).unlink(missing_ok=True)  # first: a crash midway leaves nothing to resume by mistake
    for old in folder.glob("step-*.pt"):
        old.unlink(missing_ok=True)


def changed_settings(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the settings whose values differ between two nested dicts."""
    names = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += changed_settings(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key}")
    return names


def kept_steps(run_dir: str | Path) -> list[int]:
    """The steps whose checkpoints a run folder still holds, in order."""
    names = (p.stem.split("-", 1)[1] for p in (Path(run_dir) / CHECKPOINT_DIR).glob("step-*.pt"))
    return sorted(int(n) for n in names if n.isdigit())


def checkpoint_at(run_dir: str | Path, step: int) -> Path:
    """The kept checkpoint of `step` in a run folder; a DataError lists the steps kept when it is gone."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    path = folder / checkpoint_name(step)
    if not path.is_file():
        kept = kept_steps(run_dir)
        raise DataError(
            f"{folder}: no checkpoint of step {step}; kept: {', '.join(map(str, kept)) or 'none'} "
            "(pretrain.keep_checkpoints sets how many a run keeps)"
        )
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (tensors and plain containers only); a broken file is a DataError."""
    return read_torch_file(path, "vbert checkpoint", map_location)
