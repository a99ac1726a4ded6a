"""Hierarchical k-means in PyTorch: the tree that turns clip vectors into visual words.

The paper quantises every 1024-d clip feature with hierarchical k-means, k=12 and depth 4:
the root's points are split into k clusters, each cluster's points into k more, and so on, so a
clip's visual word is its path through the tree. This module fits such a tree with any `k` and
`depth`, on CPU or CUDA.

**Batched by level.** All the clusterings of one level (1, k, k**2, ... nodes) run together
(`vbert.visual_words.kmeans_level`): every point carries the id of the node it belongs to; the level's
centroids are one `[num_nodes, k, D]` tensor; distances come from one matmul against all
centroids (the first, small levels) or from `bmm` over padded blocks of nodes of similar size;
centroids are updated with `index_add_`; k-means++ seeding draws candidates for every node at
once from per-node cumulative sums. No Python loop over nodes.

**Word ids.** A node at level `l` (the root is level 0) has id `i1*k**(l-1) + ... + il`, where
`ij` is the child index chosen at level `j`; a child of node `n` has id `n*k + i`. A leaf's id
is therefore the path `i1*k**(depth-1) + i2*k**(depth-2) + ... + i_depth`, and
`leaf_centroids[w]` is the centroid of word `w`: the id-to-centroid order cannot be scrambled.

**Always k**depth words.** A node with fewer distinct points than `k` (or none at all) still
has `k` children. The children that receive no point are *empty*: they hold a copy of their
parent's centroid (so `leaf_centroids` is a full table that can seed embeddings), they are
marked in `valid`, and assignment (by descent or by nearest leaf) never chooses them.

**Quality.** Seeding is sklearn's greedy k-means++ (2 + ln k candidates per step, the one that
lowers the node's potential most is kept), then Lloyd iterations until no label changes or
the centroid shift falls below `tol` times the node's mean feature variance; `n_init`
restarts keep, node by node, the run with the lowest inertia. A cluster that empties during
Lloyd keeps its previous centroid (sklearn moves it to a far point instead). Node by node,
with the same restarts, the inertia lands within sklearn's own seed-to-seed spread
(`benchmarks/kmeans_quality.py`, docs/benchmarks.md).

Saved as safetensors with k, depth and the feature dimension (`vbert.visual_words.kmeans_io`).
Deterministic for a seed on CPU (CUDA's `index_add_` sums in a nondeterministic order).
Memory: the data once in float32, the level's padded blocks (about 1.25x the data; none with
`cache_blocks=False`) and work buffers of `chunk_bytes`: 1M x 1024 fits on a GPU and in 24 GB.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from vbert.errors import DataError
from vbert.visual_words.kmeans_io import FORMAT_VERSION, load_tree, save_tree
from vbert.visual_words.kmeans_level import LevelKMeans, keep_better

__all__ = ["FORMAT_VERSION", "HierarchicalKMeans", "LevelKMeans"]


class HierarchicalKMeans:
    """A k-ary tree of k-means clusterings, `depth` levels deep: k**depth visual words."""

    def __init__(
        self,
        k: int = 12,
        depth: int = 4,
        seed: int = 0,
        n_init: int = 1,
        max_iter: int = 50,
        tol: float = 1e-4,
        device: str | torch.device | None = None,
        chunk_bytes: int = 256 * 2**20,
        dense_max_centroids: int = 256,
        cache_blocks: bool = True,
    ) -> None:
        if k < 2 or depth < 1 or n_init < 1 or max_iter < 1:
            raise ValueError(
                f"need k >= 2, depth >= 1, n_init >= 1, max_iter >= 1; got {k}, {depth}, {n_init}, {max_iter}"
            )
        self.k, self.depth, self.seed = k, depth, seed
        self.n_init, self.max_iter, self.tol = n_init, max_iter, tol
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.chunk_bytes = chunk_bytes
        # Levels with at most this many centroids in all use one dense matmul against every
        # centroid (fast BLAS); deeper levels use padded blocks of nodes instead.
        self.dense_max_centroids = dense_max_centroids
        self.cache_blocks = cache_blocks  # gather each level's vectors once (faster, ~1.25x more memory)
        self.dim = 0
        self.metadata: dict[str, str] = {}  # a loaded file's metadata
        self.centroids: list[torch.Tensor] = []  # level l = 1..depth: [k**l, D] (index l-1)
        self.valid: list[torch.Tensor] = []  # level l: [k**l] bool, False for empty nodes
        self.counts: list[torch.Tensor] = []  # level l: [k**l] training points per node
        self.node_inertia: list[torch.Tensor] = []  # level l = 0..depth-1: [k**l] inertia of each split
        self.n_iter: list[int] = []  # Lloyd iterations run at each level (the slowest restart)

    # ------------------------------------------------------------------ public API

    @property
    def vocab_size(self) -> int:
        """Number of visual words, k**depth (empty leaves included)."""
        return self.k**self.depth

    @property
    def leaf_centroids(self) -> torch.Tensor:
        """Centroid of every visual word, row `w` for word id `w`: [k**depth, D]."""
        self._check_fitted()
        return self.centroids[-1]

    @property
    def leaf_valid(self) -> torch.Tensor:
        """[k**depth] bool: True for leaves that received training points (assignable)."""
        self._check_fitted()
        return self.valid[-1]

    def fit(self, x: torch.Tensor) -> HierarchicalKMeans:
        """Fit the tree on `x` [N, D] (any float dtype, any device); returns self."""
        x = self._prepare(x, fitting=True)  # [N, D] float32 on self.device
        n, d = x.shape
        if n == 0:
            raise DataError("cannot fit k-means on 0 vectors")
        self.dim = d
        solver = self._solver()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed)
        sq_norms = (x * x).sum(1)  # [N]
        node = torch.zeros(n, dtype=torch.long, device=self.device)  # [N] node id at the current level
        parent_centroids = x.mean(0, keepdim=True)  # [1, D] the root's centroid
        parent_valid = torch.ones(1, dtype=torch.bool, device=self.device)
        self.centroids, self.valid, self.counts, self.node_inertia, self.n_iter = [], [], [], [], []
        for level in range(self.depth):
            num_nodes = self.k**level
            plan = solver.plan_blocks(x, sq_norms, node, num_nodes)
            best = None
            for _ in range(self.n_init):
                run = solver.fit(x, sq_norms, node, num_nodes, gen, plan)
                best = run if best is None else keep_better(best, run, node)
            del plan
            centroids, labels, inertia, counts, iters = best
            child_valid = (counts > 0) & parent_valid.repeat_interleave(self.k)  # [M*k]
            fallback = parent_centroids.repeat_interleave(self.k, dim=0)  # [M*k, D]
            centroids = torch.where(child_valid[:, None], centroids.reshape(-1, d), fallback)
            node = node * self.k + labels
            self.centroids.append(centroids)
            self.valid.append(child_valid)
            self.counts.append(counts)
            self.node_inertia.append(inertia)
            self.n_iter.append(iters)
            parent_centroids, parent_valid = centroids, child_valid
        return self

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Word id of each row of `x` [N, D] by descending the tree: [N] long (on CPU)."""
        self._check_fitted()
        x = self._prepare(x)
        solver = self._solver()
        sq_norms = (x * x).sum(1)  # [N]
        node = torch.zeros(len(x), dtype=torch.long, device=self.device)  # [N]
        for level in range(self.depth):
            num_nodes = self.k**level
            cents = self.centroids[level].view(num_nodes, self.k, -1)  # [M, k, D]
            valid = self.valid[level].view(num_nodes, self.k)  # [M, k]
            plan = solver.plan_blocks(x, sq_norms, node, num_nodes)
            dist, _ = solver.node_distances(x, sq_norms, node, cents, valid, plan)  # [N, k]
            node = node * self.k + dist.argmin(1)
        return node.cpu()

    def assign_nearest_leaf(self, x: torch.Tensor) -> torch.Tensor:
        """Word id of each row of `x` [N, D] as the nearest valid leaf over all leaves: [N] long."""
        self._check_fitted()
        x = self._prepare(x)
        leaves = self.leaf_centroids  # [V, D]
        leaf_sq = (leaves * leaves).sum(1)  # [V]
        penalty = torch.where(self.leaf_valid, 0.0, math.inf).to(leaves.dtype)  # [V]
        out = torch.empty(len(x), dtype=torch.long, device=self.device)
        step = max(1, self.chunk_bytes // (4 * (len(leaves) + x.shape[1])))
        for a in range(0, len(x), step):
            xc = x[a : a + step]  # [c, D]
            dist = leaf_sq[None, :] - 2.0 * (xc @ leaves.T) + penalty  # [c, V] (+ |x|^2, same per row)
            out[a : a + step] = dist.argmin(1)
        return out.cpu()

    def path(self, word: int) -> list[int]:
        """The child indices [i1, ..., i_depth] of a word id (the inverse of its id)."""
        if not 0 <= word < self.vocab_size:
            raise ValueError(f"word id {word} outside [0, {self.vocab_size})")
        digits = []
        for _ in range(self.depth):
            word, digit = divmod(word, self.k)
            digits.append(digit)
        return digits[::-1]

    def word_id(self, path: list[int]) -> int:
        """The word id of a path [i1, ..., i_depth]: i1*k**(depth-1) + ... + i_depth."""
        if len(path) != self.depth or any(not 0 <= i < self.k for i in path):
            raise ValueError(f"a path is {self.depth} child indices in [0, {self.k}); got {path}")
        word = 0
        for i in path:
            word = word * self.k + i
        return word

    def inertia(self, x: torch.Tensor, words: torch.Tensor | None = None) -> float:
        """Sum of squared distances from each row of `x` to the centroid of its word."""
        words = self.assign(x) if words is None else words
        total, step = 0.0, max(1, self.chunk_bytes // (8 * max(1, self.dim)))
        for a in range(0, len(x), step):  # chunks: never a second copy of all of x
            xc = self._prepare(x[a : a + step])  # [c, D]
            diff = xc - self.leaf_centroids[words[a : a + step].to(self.device)]  # [c, D]
            total += float((diff * diff).sum(dtype=torch.float64))
        return total

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        """Write the tree to a safetensors file (centroids, validity, counts; k, depth, dim in metadata)."""
        self._check_fitted()
        save_tree(self, path, metadata)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> HierarchicalKMeans:
        """Read a tree written by `save`; a malformed file is a DataError naming it."""
        return load_tree(cls, path, device)

    # ------------------------------------------------------------------ internals

    def _solver(self) -> LevelKMeans:
        """The per-level solver with this tree's settings."""
        return LevelKMeans(
            self.k, self.max_iter, self.tol, self.chunk_bytes, self.dense_max_centroids, self.cache_blocks
        )

    def _check_fitted(self) -> None:
        if not self.centroids:
            raise RuntimeError("HierarchicalKMeans is not fitted: call fit() or load() first")

    def _prepare(self, x: torch.Tensor, fitting: bool = False) -> torch.Tensor:
        x = torch.as_tensor(x)
        if x.ndim != 2:
            raise DataError(f"expected vectors of shape [N, D], got {list(x.shape)}")
        if not fitting and x.shape[1] != self.dim:
            raise DataError(
                f"vectors have dimension {x.shape[1]} but this vocabulary was fitted on {self.dim}"
            )
        return x.to(self.device, torch.float32)
