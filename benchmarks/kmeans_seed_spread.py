"""How much does one k-means restart's luck move a node's inertia? vbert and sklearn, seed by seed.

    python benchmarks/kmeans_seed_spread.py --n 30000 --dim 128 --nodes 40 --seeds 4

Fits vbert's tree (k=12, depth 3) on the hierarchical mixture of kmeans_bench.py, takes level-2
nodes of at least --min-size points, and on each node's points fits flat k-means (n_init=1)
with vbert and with sklearn for several seeds. Prints the spread of sklearn seed 1 / seed 0
(one restart's luck) and of vbert's mean over seeds / sklearn's mean over seeds (the
algorithms' difference once luck is averaged out).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from kmeans_bench import make_data
from sklearn.cluster import KMeans

from vbert.kmeans import HierarchicalKMeans


def main() -> None:
    """Run the comparison and print two summary lines."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--nodes", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--min-size", type=int, default=150)
    args = parser.parse_args()
    x = make_data(args.n, args.dim, args.k, 3, seed=0)
    words = HierarchicalKMeans(args.k, 3, seed=0).fit(x).assign(x)
    node = torch.div(words, args.k, rounding_mode="floor")  # level-2 node of each point
    sizes = torch.bincount(node, minlength=args.k**2)
    luck, difference = [], []
    for n in torch.nonzero(sizes >= args.min_size).squeeze(1)[: args.nodes].tolist():
        pts = x[node == n]
        ref = [
            KMeans(args.k, n_init=1, max_iter=50, random_state=s).fit(pts.numpy()).inertia_
            for s in range(args.seeds)
        ]
        ours = [
            float(HierarchicalKMeans(args.k, 1, seed=s).fit(pts).node_inertia[0][0])
            for s in range(args.seeds)
        ]
        if min(ref) == 0.0:  # no more distinct points than k: nothing to compare
            continue
        luck.append(ref[1] / ref[0])
        difference.append(np.mean(ours) / np.mean(ref))
    print(f"{len(luck)} nodes of {int(sizes[sizes >= args.min_size].min())}-{int(sizes.max())} points")
    print(f"sklearn seed 1 / seed 0: median {np.median(luck):.4f} [{min(luck):.4f}, {max(luck):.4f}]")
    print(
        f"vbert / sklearn, means over {args.seeds} seeds: median {np.median(difference):.4f} "
        f"[{min(difference):.4f}, {max(difference):.4f}]"
    )


if __name__ == "__main__":
    main()
