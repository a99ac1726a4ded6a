"""Hierarchical k-means in PyTorch: the tree that turns clip vectors into visual words.

The paper quantises every 1024-d clip feature with hierarchical k-means, k=12 and depth 4:
the root's points are split into k clusters, each cluster's points into k more, and so on, so a
clip's visual word is its path through the tree. This module fits such a tree with any `k` and
`depth`, on CPU or CUDA.

**Batched by level.** All the clusterings of one level (1, k, k**2, ... nodes) run together:
every point carries the id of the node it belongs to; the level's centroids are one
`[num_nodes, k, D]` tensor; distances come from one matmul against all centroids (the first,
small levels) or from `bmm` over padded blocks of nodes of similar size, each against its
nodes' `[m, k, D]` centroids; centroids are updated with `index_add_`; k-means++ seeding draws
candidates for every node at once from per-node cumulative sums. No Python loop over nodes.

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
Lloyd keeps its previous centroid.

Deterministic for a seed on CPU (CUDA's `index_add_` sums in a nondeterministic order).
Memory: the data once in float32, the level's padded blocks (about 1.25x the data; none with
`cache_blocks=False`) and work buffers of `chunk_bytes`: 1M x 1024 fits on a GPU and in 24 GB.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch

from vbert.errors import DataError

FORMAT_VERSION = "1"


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
        # centroid (fast BLAS); deeper levels gather each point's own k centroids instead.
        self.dense_max_centroids = dense_max_centroids
        self.cache_blocks = cache_blocks  # gather each level's vectors once (faster, ~1.25x more memory)
        self.dim = 0
        self.centroids: list[torch.Tensor] = []  # level l = 1..depth: [k**l, D] (index l-1)
        self.valid: list[torch.Tensor] = []  # level l: [k**l] bool, False for empty nodes
        self.counts: list[torch.Tensor] = []  # level l: [k**l] training points per node
        self.node_inertia: list[
            torch.Tensor
        ] = []  # level l = 0..depth-1: [k**l] inertia of each node's split
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
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed)
        sq_norms = (x * x).sum(1)  # [N]
        node = torch.zeros(n, dtype=torch.long, device=self.device)  # [N] node id at the current level
        parent_centroids = x.mean(0, keepdim=True)  # [1, D] the root's centroid
        parent_valid = torch.ones(1, dtype=torch.bool, device=self.device)
        self.centroids, self.valid, self.counts, self.node_inertia, self.n_iter = [], [], [], [], []
        for level in range(self.depth):
            num_nodes = self.k**level
            best = None
            for _ in range(self.n_init):
                run = self._fit_level(x, sq_norms, node, num_nodes, gen)
                best = run if best is None else _keep_better(best, run, node)
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
        sq_norms = (x * x).sum(1)
        node = torch.zeros(len(x), dtype=torch.long, device=self.device)
        for level in range(self.depth):
            num_nodes = self.k**level
            cents = self.centroids[level].view(num_nodes, self.k, -1)  # [M, k, D]
            valid = self.valid[level].view(num_nodes, self.k)  # [M, k]
            plan = self._plan(x, sq_norms, node, num_nodes)
            dist, _ = self._node_distances(x, sq_norms, node, cents, valid, plan)
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
            diff = xc - self.leaf_centroids[words[a : a + step].to(self.device)]
            total += float((diff * diff).sum(dtype=torch.float64))
        return total

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        """Write the tree to a safetensors file (centroids, validity, counts; k, depth, dim in metadata)."""
        from safetensors.torch import save as save_bytes

        from vbert.manifest import atomic_write_bytes

        self._check_fitted()
        tensors = {}
        for level in range(1, self.depth + 1):
            tensors[f"centroids.{level}"] = self.centroids[level - 1].detach().cpu().contiguous()
            tensors[f"valid.{level}"] = self.valid[level - 1].cpu().to(torch.uint8).contiguous()
            tensors[f"counts.{level}"] = self.counts[level - 1].cpu().contiguous()
        meta = {
            "format": "vbert-hierarchical-kmeans",
            "format_version": FORMAT_VERSION,
            "k": str(self.k),
            "depth": str(self.depth),
            "dim": str(self.dim),
            "seed": str(self.seed),
            "n_init": str(self.n_init),
            "max_iter": str(self.max_iter),
            **(metadata or {}),
        }
        atomic_write_bytes(path, save_bytes(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> HierarchicalKMeans:
        """Read a tree written by `save`; a malformed file is a DataError naming it."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: vocabulary file not found")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except (SafetensorError, OSError, ValueError) as err:
            raise DataError(f"{path}: not a readable safetensors vocabulary ({err})") from None
        if meta.get("format") != "vbert-hierarchical-kmeans":
            raise DataError(f"{path}: not a vbert vocabulary (metadata 'format' is {meta.get('format')!r})")
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
                if tuple(cents.shape) != (k**level, dim):
                    raise DataError(
                        f"{path}: centroids.{level} has shape {list(cents.shape)}, expected {[k**level, dim]}"
                    )
                tree.centroids.append(cents.to(tree.device))
                tree.valid.append(tensors[f"valid.{level}"].bool().to(tree.device))
                tree.counts.append(tensors[f"counts.{level}"].to(tree.device))
        except KeyError as err:
            raise DataError(f"{path}: vocabulary lacks {err}") from None
        tree.metadata = meta
        return tree

    # ------------------------------------------------------------------ internals

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

    def _plan(
        self, x: torch.Tensor, sq_norms: torch.Tensor, node: torch.Tensor, num_nodes: int
    ) -> list | None:
        """How to batch the points of a level: None for one dense matmul, else a list of `_Block`s.

        Points are grouped by node and nodes by size class (sizes rounded up to a quarter of
        their power of two, so at most 1.25x padding), so each block is a padded batch
        `[m nodes, p rows]` that one `bmm` against the block's `[m, k, D]` centroids handles.
        A node larger than the memory budget is cut into row pieces. The loop below runs over
        size classes and memory-sized blocks, never over nodes one by one. With
        `cache_blocks`, each block's vectors are gathered once per level and reused by every
        seeding step and Lloyd iteration (about 1.25x the data's memory more).
        """
        if num_nodes * self.k <= self.dense_max_centroids:
            return None
        d = x.shape[1]
        order = torch.argsort(node, stable=True)  # point ids grouped by node
        size = torch.bincount(node, minlength=num_nodes)  # [M]
        start = torch.cumsum(size, 0) - size  # [M]
        nonempty = torch.nonzero(size).squeeze(1)
        quantum = 2 ** (torch.log2(size[nonempty].double()).floor().long() - 2).clamp_min(0)  # [M']
        padded = (size[nonempty] + quantum - 1) // quantum * quantum  # [M'] rows per node, padded
        max_rows = max(1, self.chunk_bytes // (4 * (d + 2 * self.k)))
        blocks = []
        block = partial(_Block, x, sq_norms, order, start, size, cache=self.cache_blocks)
        for rows in torch.unique(padded).tolist():
            members = nonempty[padded == rows]  # [m] nodes of this size class
            if rows <= max_rows:
                per_block = max(1, max_rows // rows)
                for a in range(0, len(members), per_block):
                    blocks.append(block(members[a : a + per_block], 0, rows))
            else:  # nodes too big for one block: row pieces, one node at a time
                for n in members.tolist():
                    for r in range(0, int(size[n]), max_rows):
                        blocks.append(block(members[members == n], r, max_rows))
        return blocks

    def _node_distances(
        self,
        x: torch.Tensor,
        sq_norms: torch.Tensor,
        node: torch.Tensor,
        cents: torch.Tensor,
        valid: torch.Tensor,
        plan: list | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared distances from each point to the k centroids of its own node: ([N, k], min [N])."""
        num_nodes, k, d = cents.shape
        cent_sq = (cents * cents).sum(2)  # [M, k]
        cent_sq = torch.where(valid, cent_sq, math.inf)  # empty children are never chosen
        out = torch.empty(len(x), k, device=x.device)
        if plan is None:  # one matmul against every centroid, then keep the point's own node
            flat = cents.reshape(num_nodes * k, d)
            step = max(1, self.chunk_bytes // (4 * (num_nodes * k + d)))
            for a in range(0, len(x), step):
                xc, nc = x[a : a + step], node[a : a + step]  # [c, D], [c]
                dots = (xc @ flat.T).view(len(xc), num_nodes, k)[
                    torch.arange(len(xc), device=x.device), nc
                ]  # [c, k]
                out[a : a + step] = sq_norms[a : a + step, None] - 2.0 * dots + cent_sq[nc]
        else:  # padded blocks of nodes: [m, p, D] @ [m, D, k]
            for block in plan:
                xb, sqb = block.vectors(x, sq_norms)  # [m, p, D], [m, p]
                dots = torch.bmm(xb, cents[block.members].transpose(1, 2))  # [m, p, k]
                dist = sqb[:, :, None] - 2.0 * dots + cent_sq[block.members][:, None, :]  # [m, p, k]
                out.index_copy_(0, block.point_ids, dist.reshape(-1, k).index_select(0, block.real_rows))
        out.clamp_min_(0.0)
        return out, out.min(1).values

    def _fit_level(
        self,
        x: torch.Tensor,
        sq_norms: torch.Tensor,
        node: torch.Tensor,
        num_nodes: int,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """One restart of every clustering of a level.

        Returns (centroids [M, k, D], labels [N], inertia [M], counts [M*k], iterations).
        """
        k, d = self.k, x.shape[1]
        plan = self._plan(x, sq_norms, node, num_nodes)
        cents, valid = self._kmeans_plus_plus(x, sq_norms, node, num_nodes, gen, plan)  # [M, k, D], [M, k]
        node_size = torch.bincount(node, minlength=num_nodes).to(x.dtype)  # [M]
        # sklearn's tolerance: tol x mean per-feature variance, here of each node's own points
        node_sum = torch.zeros(num_nodes, d, device=x.device).index_add_(0, node, x)
        node_sq = torch.zeros(num_nodes, device=x.device).index_add_(0, node, sq_norms)
        mean_var = (
            (node_sq - (node_sum * node_sum).sum(1) / node_size.clamp_min(1)) / node_size.clamp_min(1) / d
        )
        tol = self.tol * mean_var.clamp_min(0)  # [M]
        labels = None
        iters = 0
        for iters in range(1, self.max_iter + 1):
            dist, _ = self._node_distances(x, sq_norms, node, cents, valid, plan)
            new_labels = dist.argmin(1)  # [N]
            if labels is not None and torch.equal(new_labels, labels):
                break  # strict convergence: no point changed cluster
            labels = new_labels
            slot = node * k + labels  # [N] child id
            sums = torch.zeros(num_nodes * k, d, device=x.device).index_add_(0, slot, x)  # [M*k, D]
            counts = torch.bincount(slot, minlength=num_nodes * k)  # [M*k]
            new = torch.where(
                counts[:, None] > 0, sums / counts.clamp_min(1)[:, None].to(x.dtype), cents.reshape(-1, d)
            ).view(num_nodes, k, d)
            shift = ((new - cents) ** 2).sum((1, 2))  # [M]
            cents = new
            if bool((shift <= tol).all()):
                break
        dist, best = self._node_distances(x, sq_norms, node, cents, valid, plan)
        labels = dist.argmin(1)
        counts = torch.bincount(node * k + labels, minlength=num_nodes * k)  # [M*k]
        inertia = torch.zeros(num_nodes, device=x.device, dtype=torch.float64).index_add_(
            0, node, best.double()
        )
        return cents, labels, inertia, counts, iters

    def _kmeans_plus_plus(
        self,
        x: torch.Tensor,
        sq_norms: torch.Tensor,
        node: torch.Tensor,
        num_nodes: int,
        gen: torch.Generator,
        plan: list | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy k-means++ seeding of every node at once: (centroids [M, k, D], valid [M, k])."""
        k, d, dev = self.k, x.shape[1], x.device
        trials = 2 + int(math.log(k))
        order = torch.argsort(node, stable=True)  # points grouped by node
        size = torch.bincount(node, minlength=num_nodes)  # [M]
        start = torch.cumsum(size, 0) - size  # [M] first position of each node in `order`
        cents = torch.zeros(num_nodes, k, d, device=dev)
        valid = torch.zeros(num_nodes, k, dtype=torch.bool, device=dev)
        # first centre: a uniformly random point of each node
        pick = start + (torch.rand(num_nodes, generator=gen, device=dev) * size).long().clamp_max(
            (size - 1).clamp_min(0)
        )
        has_points = size > 0
        first = order[pick.clamp_max(len(x) - 1)]  # [M]
        cents[:, 0] = x[first]
        valid[:, 0] = has_points
        ones = torch.ones(num_nodes, 1, dtype=torch.bool, device=dev)
        _, closest = self._node_distances(
            x, sq_norms, node, cents[:, :1], ones, plan
        )  # [N] to nearest chosen centre
        for j in range(1, k):
            weights = closest[order].double()  # [N] in node order
            cum = torch.cumsum(weights, 0)  # [N]
            before = torch.where(start > 0, cum[(start - 1).clamp_min(0)], torch.zeros_like(cum[:1]))  # [M]
            total = torch.zeros(num_nodes, dtype=torch.float64, device=dev).index_add_(
                0, node, closest.double()
            )
            u = torch.rand(num_nodes, trials, generator=gen, device=dev, dtype=torch.float64)
            target = before[:, None] + u * total[:, None]  # [M, L]
            pos = torch.searchsorted(cum, target.reshape(-1), right=True).view(num_nodes, trials)
            pos = torch.minimum(torch.maximum(pos, start[:, None]), (start + size - 1).clamp_min(0)[:, None])
            cand = order[pos.clamp_max(len(x) - 1)]  # [M, L] point indices
            cand_x = x[cand]  # [M, L, D]
            # potential of each candidate: sum over the node's points of min(closest, dist to candidate)
            all_valid = torch.ones(num_nodes, trials, dtype=torch.bool, device=dev)
            cand_dist, _ = self._node_distances(x, sq_norms, node, cand_x, all_valid, plan)  # [N, L]
            new_closest = torch.minimum(closest[:, None], cand_dist)  # [N, L]
            potential = torch.zeros(num_nodes, trials, dtype=torch.float64, device=dev).index_add_(
                0, node, new_closest.double()
            )
            choice = potential.argmin(1)  # [M]
            cents[:, j] = cand_x[torch.arange(num_nodes, device=dev), choice]
            # a node whose points all coincide with chosen centres has no new centre to offer
            valid[:, j] = has_points & (total > 0)
            closest = new_closest.gather(1, choice[node, None]).squeeze(1)
        return cents, valid


class _Block:
    """A padded batch of nodes of one size class: rows first_row.. of each member node."""

    def __init__(
        self, x, sq_norms, order, start, size, members, first_row: int, rows: int, cache: bool
    ) -> None:
        offs = first_row + torch.arange(rows, device=x.device)  # [p]
        real = offs[None, :] < size[members][:, None]  # [m, p] False on padding
        idx = order[
            start[members][:, None] + torch.minimum(offs[None, :], size[members][:, None] - 1)
        ]  # [m, p]
        self.members = members  # [m] node ids
        self.ids = idx  # [m, p] point ids (padding repeats a node's last row)
        self.real_rows = torch.nonzero(real.reshape(-1)).squeeze(1)  # positions of real rows in [m*p]
        self.point_ids = idx.reshape(-1)[self.real_rows]  # [n_real] the points those rows hold
        self.cached = (x[idx], sq_norms[idx]) if cache else None

    def vectors(self, x: torch.Tensor, sq_norms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's vectors [m, p, D] and squared norms [m, p]."""
        return self.cached if self.cached is not None else (x[self.ids], sq_norms[self.ids])


def _keep_better(best: tuple, run: tuple, node: torch.Tensor) -> tuple:
    """Merge two restarts of a level, node by node, keeping the lower inertia."""
    b_cents, b_labels, b_inertia, b_counts, b_iters = best
    r_cents, r_labels, r_inertia, r_counts, r_iters = run
    take = r_inertia < b_inertia  # [M]
    k = b_cents.shape[1]
    cents = torch.where(take[:, None, None], r_cents, b_cents)
    counts = torch.where(take.repeat_interleave(k), r_counts, b_counts)
    labels = torch.where(take[node], r_labels, b_labels)  # [N]
    return cents, labels, torch.where(take, r_inertia, b_inertia), counts, max(b_iters, r_iters)
