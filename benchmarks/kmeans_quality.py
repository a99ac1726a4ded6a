"""Per-node quality of vbert's hierarchical k-means against scikit-learn, at scale, restarts matched.

    python benchmarks/kmeans_quality.py --n 100000 --dim 1024 --n-init 3 --nodes-per-level 8 --seeds 3
    python benchmarks/kmeans_quality.py --device cuda --n 1000000 --dim 1024 --n-init 3 --nodes-per-level 16

Fits vbert's tree (k=12, depth 4 by default) on the hierarchical Gaussian mixture of
kmeans_bench.py, then samples nodes at every level (the root included) and, on exactly each
node's points, fits `sklearn.cluster.KMeans` with the same k, n_init, max_iter and tol. Three
comparisons per level:

1. vbert / sklearn: the tree's inertia for the node over sklearn's (random_state 0);
2. sklearn / sklearn: sklearn with random_state 1 over random_state 0, the spread that the
   luck of the restarts gives by itself (both sides are local optima of the same problem);
3. luck averaged: on the nodes below the root, flat k-means (depth 1) on the node's points with
   --seeds seeds on each side, vbert's mean over sklearn's mean.

For each: median, mean, min, max, the fraction of nodes within 2%, and the level's total (the
sum of the compared nodes' inertias, vbert over sklearn). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from kmeans_bench import make_data
from sklearn.cluster import KMeans

from vbert.visual_words.kmeans import HierarchicalKMeans


def summarise(ours: list[float], ref: list[float]) -> str:
    """Markdown cells for the ratios ours/ref: median | mean | [min, max] | within 2% | total ratio."""
    r = np.asarray(ours) / np.asarray(ref)
    within = float(np.mean(np.abs(r - 1.0) <= 0.02))
    return (
        f"{np.median(r):.4f} | {r.mean():.4f} | [{r.min():.4f}, {r.max():.4f}] | "
        f"{within:.0%} | {np.sum(ours) / np.sum(ref):.4f}"
    )


def sklearn_inertia(pts: np.ndarray, args: argparse.Namespace, seed: int) -> float:
    """Inertia of sklearn's KMeans (same k, n_init, max_iter, tol) on `pts` with `random_state=seed`."""
    km = KMeans(args.k, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol, random_state=seed)
    return float(km.fit(pts).inertia_)


def vbert_flat_inertia(pts: torch.Tensor, args: argparse.Namespace, seed: int, device: torch.device) -> float:
    """Inertia of vbert's k-means (one level, same k, n_init, max_iter, tol) on `pts` with `seed`."""
    tree = HierarchicalKMeans(
        args.k, 1, seed=seed, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol, device=device
    )
    return float(tree.fit(pts.to(device)).node_inertia[0][0])


def main() -> None:
    """Fit, compare node by node, print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--n-init", type=int, default=3, help="restarts, the same on both sides")
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--nodes-per-level", type=int, default=8)
    parser.add_argument(
        "--levels", type=int, nargs="*", default=None, help="tree levels to compare (default: all; 0 = root)"
    )
    parser.add_argument(
        "--min-size", type=int, default=120, help="compare nodes with at least this many points"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per side for the luck-averaged table")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(
        f"device: {args.device} ({name}, {torch.get_num_threads()} CPU threads); n={args.n:,} dim={args.dim} "
        f"k={args.k} depth={args.depth} n_init={args.n_init} max_iter={args.max_iter} tol={args.tol}"
    )
    start = time.perf_counter()
    x = make_data(args.n, args.dim, args.k, args.depth, seed=0)  # [N, D]
    tree = HierarchicalKMeans(
        args.k, args.depth, seed=0, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol, device=device
    ).fit(x.to(device))
    words = tree.assign(x.to(device))  # [N] leaf of each point: its path holds every level's node
    print(f"vbert tree fitted and assigned in {time.perf_counter() - start:.1f} s", flush=True)
    rng = np.random.default_rng(0)
    tree_rows, luck_rows = [], []
    for level in range(args.depth) if args.levels is None else args.levels:
        node = torch.div(words, args.k ** (args.depth - level), rounding_mode="floor").numpy()  # [N]
        sizes = np.bincount(node, minlength=args.k**level)
        candidates = np.flatnonzero(sizes >= args.min_size)
        chosen = rng.choice(candidates, size=min(args.nodes_per_level, len(candidates)), replace=False)
        ours, sk0, sk1, flat_ours, flat_sk = [], [], [], [], []
        for n in chosen.tolist():
            pts = x[torch.from_numpy(node == n)]  # [n_points, D]
            ref = [sklearn_inertia(pts.numpy(), args, seed) for seed in (0, 1)]
            if ref[0] == 0.0:  # no more distinct points than k: nothing to compare
                continue
            ours.append(float(tree.node_inertia[level][n]))
            sk0.append(ref[0])
            sk1.append(ref[1])
            if level > 0 and args.seeds > 0:
                flat_ours.append(
                    np.mean([vbert_flat_inertia(pts, args, s, device) for s in range(args.seeds)])
                )
                more = [sklearn_inertia(pts.numpy(), args, s) for s in range(2, args.seeds)]
                flat_sk.append(np.mean((ref + more)[: args.seeds]))  # seeds 0 and 1 are already fitted
        if not ours:
            continue
        sizes_text = f"{int(sizes[chosen].min()):,}-{int(sizes[chosen].max()):,}"
        head = f"| {level} | {len(ours)} | {sizes_text}"
        tree_rows.append(f"{head} | vbert tree / sklearn seed 0 | {summarise(ours, sk0)} |")
        tree_rows.append(f"{head} | sklearn seed 1 / sklearn seed 0 | {summarise(sk1, sk0)} |")
        if flat_ours:
            luck_rows.append(f"{head} | {summarise(flat_ours, flat_sk)} |")
        print(f"level {level} compared after {time.perf_counter() - start:.1f} s", flush=True)
    print(
        "\n| level | nodes | points per node | ratio | median | mean | [min, max] | within 2% | level total |"
    )
    print("|---:|---:|---|---|---:|---:|---|---:|---:|")
    print("\n".join(tree_rows))
    if luck_rows:
        print(
            f"\nLuck averaged: vbert mean / sklearn mean over {args.seeds} seeds each (flat k-means on the node's points)"
        )
        print("| level | nodes | points per node | median | mean | [min, max] | within 2% | level total |")
        print("|---:|---:|---|---:|---:|---|---:|---:|")
        print("\n".join(luck_rows))
    print(f"\ntotal time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
