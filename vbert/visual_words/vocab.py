"""Visual words, part 1: fit the vocabulary (hierarchical k-means) on extracted clip features.

- `vbert vocab`: sample `vocab.sample_size` clip vectors from a features folder, fit
  hierarchical k-means (`vbert.visual_words.kmeans`), write `vocab.safetensors` (centroids, plus k, depth,
  feature dimension and the features' manifest hash in its metadata) and a manifest.

`vbert.visual_words.tokenize` (`vbert tokenize`) then turns every clip into its word. `STAGE` is the
pipeline's "vocab" stage; `vbert.core.stages.resolve(STAGE, config)` gives a config's cached vocabulary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vbert.config import Config, add_config_arguments, config_from_args
from vbert.core.device import select_device
from vbert.core.manifest import (
    file_sha256,
    is_complete,
    manifest_hash,
    read_manifest,
    write_manifest,
)
from vbert.core.stages import Stage, resolve
from vbert.errors import ConfigError, DataError
from vbert.features.extract import STAGE as EXTRACT
from vbert.features.store import FeatureStore, shard_indexes
from vbert.visual_words.kmeans import HierarchicalKMeans

VOCAB_FILE = "vocab.safetensors"


# ---------------------------------------------------------------- the vocabulary


def sample_features(store: FeatureStore, sample_size: int, seed: int) -> torch.Tensor:
    """At most `sample_size` clip vectors drawn without replacement (seeded): [n, D] float32."""
    if len(store) == 0:
        raise DataError(f"{store.folder}: the features folder holds no clips")
    gen = torch.Generator().manual_seed(seed)
    if sample_size >= len(store):
        chosen = np.arange(len(store))
    else:
        chosen = np.sort(torch.randperm(len(store), generator=gen)[:sample_size].numpy())
    return torch.from_numpy(store.features[chosen].astype(np.float32))


def fit_vocab(
    features_dir: str | Path,
    out_dir: str | Path,
    config: Config,
    sample_size: int | None = None,
    device: str | torch.device | None = None,
) -> Path:
    """Fit the visual vocabulary on a sample of `features_dir`; write it and its manifest to `out_dir`."""
    features_dir, out_dir = Path(features_dir), Path(out_dir)
    cfg = config.vocab
    sample_size = cfg.sample_size if sample_size is None else sample_size
    if sample_size < 1:
        raise ConfigError(f"the vocabulary sample size must be at least 1 clip vector, got {sample_size}")
    store = FeatureStore(features_dir)
    features_hash = manifest_hash(features_dir)
    x = sample_features(store, sample_size, config.seed)  # [n, D]
    device = torch.device(device) if device is not None else torch.device("cpu")
    start = time.perf_counter()
    tree = HierarchicalKMeans(
        cfg.k,
        cfg.depth,
        seed=config.seed,
        n_init=cfg.n_init,
        max_iter=cfg.max_iter,
        tol=cfg.tol,
        device=device,
    ).fit(x)
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"features_hash": features_hash, "features_folder": features_dir.name, "sample_size": str(len(x))}
    tree.save(out_dir / VOCAB_FILE, metadata=meta)
    used = int(tree.leaf_valid.sum())
    write_manifest(
        out_dir,
        "vocab",
        vocab_spec(config, sample_size),
        inputs={"features": features_hash},
        outputs={
            VOCAB_FILE: file_sha256(out_dir / VOCAB_FILE),
            "vocab_size": tree.vocab_size,
            "words_used": used,
            "dim": tree.dim,
            "sample": len(x),
        },
        fit_seconds=round(seconds, 2),
        device=str(device),
        iterations=tree.n_iter,
        inertia_per_level=[float(i.sum()) for i in tree.node_inertia],
    )
    return out_dir


def vocab_spec(config: Config, sample_size: int | None = None) -> dict[str, Any]:
    """What decides a vocabulary: the vocab section (with the sample size used) and the seed."""
    spec = dataclasses.asdict(config.vocab)
    if sample_size is not None:
        spec["sample_size"] = sample_size
    return {"vocab": spec, "seed": config.seed}


def vocab_file(path: str | Path) -> Path:
    """The vocabulary file named by `path`: the .safetensors file itself, or the folder holding it."""
    path = Path(path)
    return path / VOCAB_FILE if path.is_dir() else path


def load_vocab(
    path: str | Path, features_dir: str | Path | None = None, device: str | torch.device | None = None
) -> HierarchicalKMeans:
    """Load a vocabulary; with `features_dir`, refuse it when the features have another dimension."""
    file = vocab_file(path)
    tree = HierarchicalKMeans.load(file, device=device)
    if features_dir is not None:
        dim = _features_dim(Path(features_dir))
        if dim != tree.dim:
            raise DataError(
                f"{file}: this vocabulary was fitted on {tree.dim}-d features, but {features_dir} holds "
                f"{dim}-d features (another extractor?); fit a vocabulary on them with `vbert vocab`"
            )
    return tree


def _features_dim(folder: Path) -> int:
    """Feature dimension of a features folder, from its first shard index (no arrays read)."""
    indexes = shard_indexes(folder)
    if not indexes:
        raise DataError(f"{folder}: no feature shards here")
    try:
        return int(json.loads(indexes[0].read_text(encoding="utf-8"))["dim"])
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{indexes[0]}: feature index is not readable ({err})") from None


# ---------------------------------------------------------------- the stage


def run_stage(config: Config, inputs: dict[str, Path], out: Path, force: bool) -> dict[str, Any]:
    """The "vocab" stage: the vocabulary fitted on the "extract" stage's features, into `out`."""
    features = inputs["extract"]
    if force or not is_complete(
        out, vocab_spec(config, config.vocab.sample_size), {"features": manifest_hash(features)}
    ):
        fit_vocab(features, out, config, device=select_device())
    manifest = read_manifest(out)
    summary = {k: v for k, v in manifest["outputs"].items() if k != VOCAB_FILE}
    return {**summary, "fit_seconds": manifest.get("fit_seconds")}


STAGE = Stage(
    "vocab",
    "hierarchical k-means -> visual words (vbert.visual_words)",
    run_stage,
    needs=(EXTRACT,),
    key=vocab_spec,
    code=(
        "vbert.visual_words.vocab",
        "vbert.visual_words.kmeans",
        "vbert.visual_words.kmeans_level",
        "vbert.visual_words.kmeans_io",
    ),
)


# ---------------------------------------------------------------- commands


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert vocab`."""
    add_config_arguments(parser)
    parser.add_argument(
        "--features", default=None, help="features folder (default: the preset's, built if needed)"
    )
    parser.add_argument("--out", default="runs/vocab", help="vocabulary folder (default: runs/vocab)")
    parser.add_argument(
        "--sample-size", type=int, default=None, help="clip vectors to fit on (default: vocab.sample_size)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    parser.add_argument("--force", action="store_true", help="fit again even when the folder is complete")


def main(args: argparse.Namespace) -> int:
    """`vbert vocab`: fit the visual vocabulary."""
    config = config_from_args(args)
    if args.features is None:
        args.features = resolve(EXTRACT, config)
    out = Path(args.out)
    sample = config.vocab.sample_size if args.sample_size is None else args.sample_size
    if args.force or not is_complete(
        out, vocab_spec(config, sample), {"features": manifest_hash(args.features)}
    ):
        fit_vocab(args.features, out, config, sample_size=sample, device=select_device(args.device))
    manifest = read_manifest(out)
    o = manifest["outputs"]
    print(
        f"{out / VOCAB_FILE}: {o['vocab_size']} words ({config.vocab.k}^{config.vocab.depth}), "
        f"{o['words_used']} used, "
        f"fitted on {o['sample']} vectors of {o['dim']} dims in {manifest.get('fit_seconds')} s"
    )
    return 0
