"""Fit time of vbert's hierarchical k-means against scikit-learn, on clustered 1024-d vectors.

    python benchmarks/kmeans_bench.py --device cpu --sizes 100000 1000000
    python benchmarks/kmeans_bench.py --device cuda --sizes 100000 1000000 --sklearn-sizes

The reference is the same per-node algorithm run the usual way: a Python loop over the nodes
of each level calling `sklearn.cluster.KMeans` (greedy k-means++, Lloyd, same k, n_init,
max_iter and tol). Each fit is timed in wall-clock seconds and in process CPU seconds (all
threads): on a shared machine the wall time includes waiting for the cores, the CPU time
does not. Quality columns: the inertia of the root split (same points for both) and the total
inertia of the leaves; the per-node comparison at scale is benchmarks/kmeans_quality.py.
Data: a hierarchical Gaussian mixture (k**depth centres made of k offsets per level) plus
noise, so the tree has structure to find. Prints one Markdown table row per measurement.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch


def make_data(n: int, dim: int, k: int, depth: int, seed: int) -> torch.Tensor:
    """[n, dim] float32: a sum of one random offset per level (shrinking) plus Gaussian noise."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen)  # noise, [n, D]
    for level in range(depth):
        offsets = torch.randn(k ** (level + 1), dim, generator=gen) * (4.0 / 2**level)  # [k**(l+1), D]
        leaf = torch.randint(0, k ** (level + 1), (n,), generator=gen)
        x += offsets[leaf]
    return x


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so timings measure the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit_vbert(x: torch.Tensor, args: argparse.Namespace, device: torch.device):
    """Fit vbert's tree; returns (tree, wall s, CPU s). The data is on the device before timing starts."""
    from vbert.visual_words.kmeans import HierarchicalKMeans

    x_dev = x.to(device)
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    tree = HierarchicalKMeans(
        args.k, args.depth, seed=0, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol, device=device
    ).fit(x_dev)
    sync(device)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    del x_dev
    return tree, seconds, cpu


def fit_sklearn_tree(
    x: np.ndarray, args: argparse.Namespace, budget_s: float
) -> tuple[float, float, float, float, int]:
    """The tree with sklearn, node by node: (wall s, CPU s, root inertia, leaf inertia, levels done).

    Prints one progress line per level (wall and process CPU seconds so far), so a run that is
    stopped early still leaves a measured lower bound.
    """
    from sklearn.cluster import KMeans

    start, cpu_start = time.perf_counter(), time.process_time()
    groups = [np.arange(len(x))]
    root_inertia = leaf_inertia = float("nan")
    for level in range(args.depth):
        next_groups, level_inertia = [], 0.0
        for idx in groups:
            if len(idx) < args.k:
                next_groups += [idx] + [idx[:0]] * (args.k - 1)
                continue
            pts = x if len(idx) == len(x) else x[idx]  # the root uses the data itself, no copy
            km = KMeans(args.k, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol, random_state=0)
            km.fit(pts)
            level_inertia += km.inertia_
            next_groups += [idx[km.labels_ == c] for c in range(args.k)]
        if level == 0:
            root_inertia = level_inertia
        groups = next_groups
        print(
            f"  sklearn tree: level {level} done ({len(groups)} children) after "
            f"{time.perf_counter() - start:.1f} s wall, {time.process_time() - cpu_start:.1f} s CPU",
            flush=True,
        )
        if time.perf_counter() - start > budget_s and level < args.depth - 1:
            return (
                time.perf_counter() - start,
                time.process_time() - cpu_start,
                root_inertia,
                float("nan"),
                level + 1,
            )
    leaf_inertia = level_inertia
    return (
        time.perf_counter() - start,
        time.process_time() - cpu_start,
        root_inertia,
        leaf_inertia,
        args.depth,
    )


def main() -> None:
    """Run the benchmark and print Markdown rows."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--n-init", type=int, default=1)
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument(
        "--sklearn-sizes",
        type=int,
        nargs="*",
        default=None,
        help="sizes to also fit with scikit-learn (default: all of --sizes)",
    )
    parser.add_argument(
        "--sklearn-budget-s",
        type=float,
        default=3600.0,
        help="stop the sklearn tree after the level that passes this many seconds",
    )
    parser.add_argument(
        "--sklearn-only",
        action="store_true",
        help="time only the sklearn tree (no vbert fit: half the memory, for the long CPU run)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        torch.cuda.init()
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    sk_sizes = args.sizes if args.sklearn_sizes is None else args.sklearn_sizes
    print(
        f"device: {args.device} ({name}); k={args.k} depth={args.depth} n_init={args.n_init} "
        f"max_iter={args.max_iter} dim={args.dim}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')}"
    )
    if device.type == "cuda":  # warm up kernels and the allocator outside the timing
        fit_vbert(
            make_data(20_000, args.dim, args.k, 2, 1),
            argparse.Namespace(**{**vars(args), "depth": 2}),
            device,
        )
    print(
        "| vectors | vbert wall s (CPU s) | vbert device | sklearn wall s (CPU s) | speed-up wall (CPU) "
        "| root inertia vbert/sklearn | leaf inertia vbert/sklearn |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n in args.sizes:
        x = make_data(n, args.dim, args.k, args.depth, seed=0)  # [n, D]
        ours = speed = root_ratio = leaf_ratio = sk_text = "-"
        if not args.sklearn_only:
            tree, seconds, cpu = fit_vbert(x, args, device)
            ours = f"{seconds:.1f} ({cpu:.1f})"
            leaf_vbert = tree.inertia(x.to(device), tree.assign(x.to(device)))
            root_vbert = float(tree.node_inertia[0][0])
            del tree
        if n in sk_sizes or args.sklearn_only:
            sk_s, sk_cpu, sk_root, sk_leaf, levels = fit_sklearn_tree(x.numpy(), args, args.sklearn_budget_s)
            done = levels == args.depth
            sk_text = (
                f"{sk_s:.1f} ({sk_cpu:.1f})" if done else f"> {sk_s:.0f} (> {sk_cpu:.0f}), {levels} levels"
            )
            if not args.sklearn_only:
                bound = "" if done else "> "
                speed = f"{bound}{sk_s / seconds:.1f}x ({bound}{sk_cpu / cpu:.1f}x)"
                root_ratio = f"{root_vbert / sk_root:.4f}"
                leaf_ratio = f"{leaf_vbert / sk_leaf:.4f}" if done else "-"
        print(
            f"| {n:,} | {ours} | {args.device} | {sk_text} | {speed} | {root_ratio} | {leaf_ratio} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
