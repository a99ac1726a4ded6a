"""One level of hierarchical k-means: every node's clustering at once, in batched tensor operations.

At a level with `M` nodes each point carries the id of its node (`node`, [N]); the level's
centroids are one `[M, k, D]` tensor. `LevelKMeans` seeds (greedy k-means++) and refines
(Lloyd) all `M` clusterings together:

- distances come from one matmul against all `M*k` centroids when there are few of them
  (`dense_max_centroids`), else from `bmm` over padded blocks of nodes of similar size, each
  block against its nodes' `[m, k, D]` centroids (`plan_blocks`);
- centroids are updated with `index_add_`, counts with `bincount`;
- k-means++ draws each node's candidates from per-node slices of one cumulative sum.

The Python loops run over seeding steps, Lloyd iterations and memory-sized blocks, never over
nodes one by one. `vbert.visual_words.kmeans.HierarchicalKMeans` stacks `depth` such levels into a tree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch


class Block:
    """A padded batch of nodes of one size class: rows `first_row ..` of each member node."""

    def __init__(
        self,
        x: torch.Tensor,
        sq_norms: torch.Tensor,
        order: torch.Tensor,
        start: torch.Tensor,
        size: torch.Tensor,
        members: torch.Tensor,
        first_row: int,
        rows: int,
        cache: bool,
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


# One restart of a level: (centroids [M, k, D], labels [N], inertia [M], counts [M*k], iterations).
LevelFit = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]


@dataclass
class LevelKMeans:
    """Solves all the k-means problems of one tree level together (see the module docstring)."""

    k: int
    max_iter: int = 50
    tol: float = 1e-4
    chunk_bytes: int = 256 * 2**20  # work-buffer budget per matmul / block
    dense_max_centroids: int = 256  # at most this many centroids in all: one dense matmul
    cache_blocks: bool = True  # gather each block's vectors once per level (~1.25x the data more)

    def plan_blocks(
        self, x: torch.Tensor, sq_norms: torch.Tensor, node: torch.Tensor, num_nodes: int
    ) -> list[Block] | None:
        """How to batch a level's points: None for one dense matmul, else a list of blocks (`Block`).

        Points are grouped by node and nodes by size class (sizes rounded up to a quarter of
        their power of two, so at most 1.25x padding), so each block is a padded batch
        `[m nodes, p rows]` that one `bmm` against the block's `[m, k, D]` centroids handles.
        A node larger than the memory budget is cut into row pieces.
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
        block = partial(Block, x, sq_norms, order, start, size, cache=self.cache_blocks)
        for rows in torch.unique(padded).tolist():  # size classes
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

    def node_distances(
        self,
        x: torch.Tensor,
        sq_norms: torch.Tensor,
        node: torch.Tensor,
        cents: torch.Tensor,
        valid: torch.Tensor,
        plan: list[Block] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared distances from each point to the centroids `cents` [M, c, D] of its own node.

        Returns ([N, c], the minimum per point [N]); centroids with `valid` [M, c] False are
        never nearest.
        """
        num_nodes, c, d = cents.shape
        cent_sq = (cents * cents).sum(2)  # [M, c]
        cent_sq = torch.where(valid, cent_sq, math.inf)  # empty children are never chosen
        out = torch.empty(len(x), c, device=x.device)
        if plan is None:  # one matmul against every centroid, then keep the point's own node
            flat = cents.reshape(num_nodes * c, d)
            step = max(1, self.chunk_bytes // (4 * (num_nodes * c + d)))
            for a in range(0, len(x), step):
                xc, nc = x[a : a + step], node[a : a + step]  # [s, D], [s]
                rows = torch.arange(len(xc), device=x.device)
                dots = (xc @ flat.T).view(len(xc), num_nodes, c)[rows, nc]  # [s, c]
                out[a : a + step] = sq_norms[a : a + step, None] - 2.0 * dots + cent_sq[nc]
        else:  # padded blocks of nodes: [m, p, D] @ [m, D, c]
            for block in plan:
                xb, sqb = block.vectors(x, sq_norms)  # [m, p, D], [m, p]
                dots = torch.bmm(xb, cents[block.members].transpose(1, 2))  # [m, p, c]
                dist = sqb[:, :, None] - 2.0 * dots + cent_sq[block.members][:, None, :]  # [m, p, c]
                out.index_copy_(0, block.point_ids, dist.reshape(-1, c).index_select(0, block.real_rows))
        out.clamp_min_(0.0)
        return out, out.min(1).values

    def fit(
        self,
        x: torch.Tensor,
        sq_norms: torch.Tensor,
        node: torch.Tensor,
        num_nodes: int,
        gen: torch.Generator,
        plan: list[Block] | None,
    ) -> LevelFit:
        """One restart of every clustering of a level: k-means++, then Lloyd until converged."""
        k, d = self.k, x.shape[1]
        cents, valid = self.seed_plus_plus(x, sq_norms, node, num_nodes, gen, plan)  # [M, k, D], [M, k]
        node_size = torch.bincount(node, minlength=num_nodes).to(x.dtype).clamp_min(1)  # [M]
        # sklearn's tolerance: tol x mean per-feature variance, here of each node's own points
        node_sum = torch.zeros(num_nodes, d, device=x.device).index_add_(0, node, x)  # [M, D]
        node_sq = torch.zeros(num_nodes, device=x.device).index_add_(0, node, sq_norms)  # [M]
        mean_var = (node_sq - (node_sum * node_sum).sum(1) / node_size) / node_size / d  # [M]
        tol = self.tol * mean_var.clamp_min(0)  # [M]
        labels = None
        iters = 0
        for iters in range(1, self.max_iter + 1):  # noqa: B007 - returned: the iterations run
            dist, _ = self.node_distances(x, sq_norms, node, cents, valid, plan)
            new_labels = dist.argmin(1)  # [N]
            if labels is not None and torch.equal(new_labels, labels):
                break  # strict convergence: no point changed cluster
            labels = new_labels
            slot = node * k + labels  # [N] child id
            sums = torch.zeros(num_nodes * k, d, device=x.device).index_add_(0, slot, x)  # [M*k, D]
            counts = torch.bincount(slot, minlength=num_nodes * k)  # [M*k]
            mean = sums / counts.clamp_min(1)[:, None].to(x.dtype)  # [M*k, D]
            # a cluster that empties keeps its previous centroid
            new = torch.where(counts[:, None] > 0, mean, cents.reshape(-1, d)).view(num_nodes, k, d)
            shift = ((new - cents) ** 2).sum((1, 2))  # [M]
            cents = new
            if bool((shift <= tol).all()):
                break
        dist, best = self.node_distances(x, sq_norms, node, cents, valid, plan)
        labels = dist.argmin(1)  # [N]
        counts = torch.bincount(node * k + labels, minlength=num_nodes * k)  # [M*k]
        inertia = torch.zeros(num_nodes, device=x.device, dtype=torch.float64).index_add_(
            0, node, best.double()
        )  # [M]
        return cents, labels, inertia, counts, iters

    def seed_plus_plus(
        self,
        x: torch.Tensor,
        sq_norms: torch.Tensor,
        node: torch.Tensor,
        num_nodes: int,
        gen: torch.Generator,
        plan: list[Block] | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy k-means++ seeding of every node at once: (centroids [M, k, D], valid [M, k]).

        As in scikit-learn: 2 + ln k candidates per step, drawn with probability proportional
        to the squared distance to the nearest chosen centre; the one that lowers the node's
        potential most is kept.
        """
        k, d, dev = self.k, x.shape[1], x.device
        trials = 2 + int(math.log(k))
        order = torch.argsort(node, stable=True)  # points grouped by node
        size = torch.bincount(node, minlength=num_nodes)  # [M]
        start = torch.cumsum(size, 0) - size  # [M] first position of each node in `order`
        last = (start + size - 1).clamp_min(0)  # [M] last position of each node in `order`
        cents = torch.zeros(num_nodes, k, d, device=dev)
        valid = torch.zeros(num_nodes, k, dtype=torch.bool, device=dev)
        # first centre: a uniformly random point of each node
        offset = (torch.rand(num_nodes, generator=gen, device=dev) * size).long()  # [M]
        pick = start + offset.clamp_max((size - 1).clamp_min(0))
        has_points = size > 0
        cents[:, 0] = x[order[pick.clamp_max(len(x) - 1)]]
        valid[:, 0] = has_points
        ones = torch.ones(num_nodes, 1, dtype=torch.bool, device=dev)
        _, closest = self.node_distances(x, sq_norms, node, cents[:, :1], ones, plan)  # [N]
        rows = torch.arange(num_nodes, device=dev)
        all_valid = torch.ones(num_nodes, trials, dtype=torch.bool, device=dev)
        for j in range(1, k):
            cum = torch.cumsum(closest[order].double(), 0)  # [N] in node order
            before = torch.where(start > 0, cum[(start - 1).clamp_min(0)], torch.zeros_like(cum[:1]))  # [M]
            total = torch.zeros(num_nodes, dtype=torch.float64, device=dev).index_add_(
                0, node, closest.double()
            )  # [M] each node's potential
            u = torch.rand(num_nodes, trials, generator=gen, device=dev, dtype=torch.float64)
            target = before[:, None] + u * total[:, None]  # [M, L]
            pos = torch.searchsorted(cum, target.reshape(-1), right=True).view(num_nodes, trials)
            pos = torch.minimum(torch.maximum(pos, start[:, None]), last[:, None])  # inside the node
            cand_x = x[order[pos.clamp_max(len(x) - 1)]]  # [M, L, D]
            # potential of each candidate: sum over the node's points of min(closest, dist to it)
            cand_dist, _ = self.node_distances(x, sq_norms, node, cand_x, all_valid, plan)  # [N, L]
            new_closest = torch.minimum(closest[:, None], cand_dist)  # [N, L]
            potential = torch.zeros(num_nodes, trials, dtype=torch.float64, device=dev).index_add_(
                0, node, new_closest.double()
            )  # [M, L]
            choice = potential.argmin(1)  # [M]
            cents[:, j] = cand_x[rows, choice]
            # a node whose points all coincide with chosen centres has no new centre to offer
            valid[:, j] = has_points & (total > 0)
            closest = new_closest.gather(1, choice[node, None]).squeeze(1)  # [N]
        return cents, valid


def keep_better(best: LevelFit, run: LevelFit, node: torch.Tensor) -> LevelFit:
    """Merge two restarts of a level, node by node, keeping the one with the lower inertia."""
    b_cents, b_labels, b_inertia, b_counts, b_iters = best
    r_cents, r_labels, r_inertia, r_counts, r_iters = run
    take = r_inertia < b_inertia  # [M]
    k = b_cents.shape[1]
    cents = torch.where(take[:, None, None], r_cents, b_cents)  # [M, k, D]
    counts = torch.where(take.repeat_interleave(k), r_counts, b_counts)  # [M*k]
    labels = torch.where(take[node], r_labels, b_labels)  # [N]
    return cents, labels, torch.where(take, r_inertia, b_inertia), counts, max(b_iters, r_iters)
