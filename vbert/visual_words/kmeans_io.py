"""Saving and loading a hierarchical k-means tree as safetensors (no pickle, nothing executed).

The file holds, for each level l = 1..depth, `centroids.l` [k**l, D] float32, `valid.l`
[k**l] uint8 and `counts.l` [k**l] int64, and in its string metadata the format name and
version, k, depth, the feature dimension `dim`, the fit's seed, n_init and max_iter, plus
whatever the caller adds (`vbert.visual_words.vocab` adds the features' manifest hash).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError, safe_open

from vbert.core.weights import write_safetensors
from vbert.errors import DataError

if TYPE_CHECKING:
    from vbert.visual_words.kmeans import HierarchicalKMeans

FORMAT = "vbert-hierarchical-kmeans"
FORMAT_VERSION = "1"


def save_tree(tree: HierarchicalKMeans, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a fitted tree to a safetensors file, atomically."""
    tensors = {}
    for level in range(1, tree.depth + 1):
        tensors[f"centroids.{level}"] = tree.centroids[level - 1].detach().cpu().contiguous()
        tensors[f"valid.{level}"] = tree.valid[level - 1].cpu().to(torch.uint8).contiguous()
        tensors[f"counts.{level}"] = tree.counts[level - 1].cpu().contiguous()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "k": str(tree.k),
        "depth": str(tree.depth),
        "dim": str(tree.dim),
        "seed": str(tree.seed),
        "n_init": str(tree.n_init),
        "max_iter": str(tree.max_iter),
        **(metadata or {}),
    }
    write_safetensors(path, tensors, meta)


def _read_vocabulary_file(path: Path, with_tensors: bool) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a vbert vocabulary file; tensors only when asked. Errors name the file."""
    if not path.is_file():
        raise DataError(f"{path}: vocabulary file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            names = list(handle.keys()) if with_tensors else []
            tensors = {name: handle.get_tensor(name) for name in names}
    except (SafetensorError, OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable safetensors vocabulary ({err})") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a vbert vocabulary (metadata 'format' is {meta.get('format')!r})")
    return meta, tensors


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a vocabulary file (k, depth, dim, features_hash, ...), no tensors read."""
    return _read_vocabulary_file(Path(path), with_tensors=False)[0]


def load_tree(
    cls: type[HierarchicalKMeans], path: str | Path, device: str | torch.device | None = None
) -> HierarchicalKMeans:
    """Read a tree written by `save_tree`; a missing or malformed file is a DataError naming it."""
    path = Path(path)
    meta, tensors = _read_vocabulary_file(path, with_tensors=True)
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: vocabulary format version {meta.get('format_version')!r}, this vbert reads "
            f"{FORMAT_VERSION!r}"
        )
    try:
        k, depth, dim = int(meta["k"]), int(meta["depth"]), int(meta["dim"])
        tree = cls(
            k,
            depth,
            seed=int(meta.get("seed", 0)),
            n_init=int(meta.get("n_init", 1)),
            max_iter=int(meta.get("max_iter", 50)),
            device=device,
        )
        tree.dim = dim
        for level in range(1, depth + 1):
            cents = tensors[f"centroids.{level}"].float()
            valid = tensors[f"valid.{level}"].bool()
            counts = tensors[f"counts.{level}"]
            expected = (k**level, dim)
            if tuple(cents.shape) != expected or valid.shape != (k**level,) or counts.shape != (k**level,):
                raise DataError(
                    f"{path}: level {level} has centroids {list(cents.shape)}, valid {list(valid.shape)}, "
                    f"counts {list(counts.shape)}; expected {list(expected)}, [{k**level}], [{k**level}]"
                )
            if not valid.any():
                raise DataError(f"{path}: level {level} has no valid cluster")
            if not torch.isfinite(cents[valid]).all():
                raise DataError(f"{path}: level {level} has NaN or infinite centroids")
            tree.centroids.append(cents.to(tree.device))
            tree.valid.append(valid.to(tree.device))
            tree.counts.append(counts.to(tree.device))
    except KeyError as err:
        raise DataError(f"{path}: vocabulary lacks {err}") from None
    except ValueError as err:  # k, depth or dim not integers, or refused by the constructor
        raise DataError(f"{path}: bad vocabulary metadata ({err})") from None
    tree.metadata = meta
    return tree
