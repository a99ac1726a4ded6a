"""Hierarchical k-means: word ids are tree paths, k**depth words always, quality against sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from vbert.errors import DataError
from vbert.visual_words.kmeans import HierarchicalKMeans, LevelKMeans


def hierarchical_blobs(
    n: int, dim: int, k: int, depth: int, seed: int = 0, noise: float = 0.3
) -> torch.Tensor:
    """Points around k**depth nested centres: a leaf's centre sums one offset per tree node on its path."""
    gen = torch.Generator().manual_seed(seed)
    leaf = torch.randint(0, k**depth, (n,), generator=gen)
    x = noise * torch.randn(n, dim, generator=gen)
    for level in range(1, depth + 1):
        offsets = torch.randn(k**level, dim, generator=gen) * (6.0 / 3 ** (level - 1))
        x += offsets[torch.div(leaf, k ** (depth - level), rounding_mode="floor")]
    return x


def test_word_id_is_the_path_and_centroids_follow_ids():
    x = hierarchical_blobs(900, 6, k=3, depth=3)
    tree = HierarchicalKMeans(k=3, depth=3, seed=0, max_iter=100).fit(x)
    assert tree.vocab_size == 27 and tree.leaf_centroids.shape == (27, 6)
    assert tree.word_id([2, 0, 1]) == 2 * 9 + 0 * 3 + 1
    for w in range(27):
        assert tree.word_id(tree.path(w)) == w
    words = tree.assign(x)
    for level in range(1, 4):
        prefix = torch.div(words, 3 ** (3 - level), rounding_mode="floor")  # node id at this level
        for node in prefix.unique().tolist():
            # the centroid stored under id `node` is the mean of the points whose path starts there
            members = x[prefix == node]
            assert torch.allclose(tree.centroids[level - 1][node], members.mean(0), atol=1e-4)
            assert int(tree.counts[level - 1][node]) == len(members)


def test_tiny_data_at_depth_four_still_has_k_to_the_depth_words():
    x = hierarchical_blobs(40, 5, k=3, depth=2, seed=1)
    x = torch.cat([x, x[:5]])  # duplicates: some nodes have fewer distinct points than k
    tree = HierarchicalKMeans(k=3, depth=4, seed=0).fit(x)
    assert tree.leaf_centroids.shape == (81, 5)
    assert all(c.shape == (3**level, 5) for level, c in enumerate(tree.centroids, start=1))
    valid = tree.leaf_valid
    assert 0 < int(valid.sum()) <= 40  # at most one used leaf per distinct point
    assert not valid.all()
    assert int(tree.counts[-1].sum()) == len(x) and bool((tree.counts[-1][~valid] == 0).all())
    # empty leaves hold their parent's centroid, and no assignment ever picks one
    empty = torch.nonzero(~valid).squeeze(1)
    parent = torch.div(empty, 3, rounding_mode="floor")
    assert torch.equal(tree.leaf_centroids[empty], tree.centroids[-2][parent])
    probe = torch.cat([x, 10 * torch.randn(200, 5)])
    assert bool(valid[tree.assign(probe)].all())
    assert bool(valid[tree.assign_nearest_leaf(probe)].all())


def test_single_point_and_all_identical_points():
    tree = HierarchicalKMeans(k=4, depth=2, seed=0).fit(torch.ones(7, 3))
    assert int(tree.leaf_valid.sum()) == 1
    assert tree.assign(torch.ones(2, 3)).tolist() == [0, 0]
    with pytest.raises(DataError):
        HierarchicalKMeans(k=2, depth=1).fit(torch.zeros(0, 3))


def test_nearest_leaf_is_never_farther_than_descent():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(3))
    tree = HierarchicalKMeans(k=4, depth=2, seed=0).fit(x)
    by_tree, by_leaf = tree.assign(x), tree.assign_nearest_leaf(x)
    d_tree = ((x - tree.leaf_centroids[by_tree]) ** 2).sum(1)
    d_leaf = ((x - tree.leaf_centroids[by_leaf]) ** 2).sum(1)
    assert bool((d_leaf <= d_tree + 1e-4).all())
    assert tree.inertia(x, by_leaf) <= tree.inertia(x, by_tree) + 1e-3
    assert (by_tree != by_leaf).any()  # on unstructured data the two differ somewhere


def test_per_node_inertia_within_two_percent_of_sklearn():
    k, depth, n_init = 3, 2, 3
    x = hierarchical_blobs(1200, 8, k=k, depth=depth, seed=2, noise=1.0)
    tree = HierarchicalKMeans(k=k, depth=depth, seed=0, n_init=n_init, max_iter=300).fit(x)
    words = tree.assign(x)
    for level in range(depth):
        node = torch.div(words, k ** (depth - level), rounding_mode="floor")
        for n in node.unique().tolist():
            points = x[node == n].numpy().astype(np.float64)
            ref = KMeans(k, n_init=n_init, max_iter=300, random_state=0).fit(points).inertia_
            ours = float(tree.node_inertia[level][n])
            assert abs(ours - ref) / ref < 0.02, (level, n, ours, ref)


def test_restarts_keep_the_best_per_node():
    x = torch.randn(400, 4, generator=torch.Generator().manual_seed(5))
    one = HierarchicalKMeans(k=5, depth=1, seed=0, n_init=1).fit(x)
    many = HierarchicalKMeans(k=5, depth=1, seed=0, n_init=4).fit(x)
    assert float(many.node_inertia[0][0]) <= float(one.node_inertia[0][0]) + 1e-6
    assert float(many.node_inertia[0][0]) == pytest.approx(many.inertia(x), rel=1e-4)


def test_deterministic_for_a_seed_and_independent_of_chunking():
    x = hierarchical_blobs(600, 6, k=3, depth=2, seed=4, noise=1.0)
    a = HierarchicalKMeans(k=3, depth=3, seed=7).fit(x)
    b = HierarchicalKMeans(k=3, depth=3, seed=7).fit(x)
    assert all(torch.equal(p, q) for p, q in zip(a.centroids, b.centroids))
    # tiny memory budget: row pieces and many small blocks, and no dense level
    c = HierarchicalKMeans(k=3, depth=3, seed=7, chunk_bytes=2048, dense_max_centroids=0).fit(x)
    assert torch.equal(a.assign(x), c.assign(x))
    assert all(torch.allclose(p, q, atol=1e-4) for p, q in zip(a.centroids, c.centroids))
    assert torch.equal(a.assign_nearest_leaf(x), c.assign_nearest_leaf(x))
    lean = HierarchicalKMeans(k=3, depth=3, seed=7, dense_max_centroids=0, cache_blocks=False).fit(x)
    assert torch.equal(lean.assign(x), c.assign(x))


def test_save_load_roundtrip_and_refusals(tmp_path):
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(6))
    tree = HierarchicalKMeans(k=3, depth=2, seed=0).fit(x)
    path = tmp_path / "vocab.safetensors"
    tree.save(path, metadata={"features_hash": "abc"})
    back = HierarchicalKMeans.load(path)
    assert (back.k, back.depth, back.dim) == (3, 2, 6) and back.metadata["features_hash"] == "abc"
    assert torch.equal(back.assign(x), tree.assign(x))
    assert torch.equal(back.leaf_valid, tree.leaf_valid)
    with pytest.raises(DataError, match="dimension 5"):
        back.assign(torch.randn(3, 5))
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match="vocab.safetensors"):
        HierarchicalKMeans.load(path)
    with pytest.raises(DataError, match="not found"):
        HierarchicalKMeans.load(tmp_path / "missing.safetensors")


def test_a_vocabulary_written_again_is_the_same_bytes(tmp_path):
    """Its metadata has several keys, which safetensors alone writes in a different order each time."""
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(6))
    tree = HierarchicalKMeans(k=3, depth=2, seed=0).fit(x)
    written = set()
    for i in range(10):
        tree.save(tmp_path / f"vocab-{i}.safetensors", metadata={"features_hash": "abc", "source": "x"})
        written.add((tmp_path / f"vocab-{i}.safetensors").read_bytes())
    assert len(written) == 1
    back = HierarchicalKMeans.load(tmp_path / "vocab-0.safetensors")  # and it reads back
    assert back.metadata["source"] == "x" and torch.equal(back.assign(x), tree.assign(x))


def test_path_and_word_id_reject_out_of_range():
    tree = HierarchicalKMeans(k=12, depth=4)
    assert tree.vocab_size == 20736
    assert tree.word_id([11, 11, 11, 11]) == 20735 and tree.path(12**3) == [1, 0, 0, 0]
    with pytest.raises(ValueError):
        tree.path(20736)
    with pytest.raises(ValueError):
        tree.word_id([12, 0, 0, 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the CUDA k-means fit was not tested")
def test_cuda_fit_matches_cpu_quality():
    x = hierarchical_blobs(2000, 16, k=3, depth=2, seed=8)
    cpu = HierarchicalKMeans(k=3, depth=2, seed=0, n_init=2).fit(x)
    gpu = HierarchicalKMeans(k=3, depth=2, seed=0, n_init=2, device="cuda").fit(x.cuda())
    assert gpu.inertia(x) == pytest.approx(cpu.inertia(x), rel=0.02)


def test_level_distances_dense_and_blocked_match_brute_force():
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(500, 7, generator=gen)
    node = torch.randint(0, 6, (500,), generator=gen)  # 6 nodes of uneven sizes
    node[node == 5] = 4  # node 5 has no points
    cents = torch.randn(6, 3, 7, generator=gen)  # [M, k, D]
    valid = torch.ones(6, 3, dtype=torch.bool)
    valid[2, 1] = False  # an empty child is never nearest
    brute = ((x[:, None, :] - cents[node]) ** 2).sum(2)  # [N, k]
    brute[node == 2, 1] = float("inf")
    sq = (x * x).sum(1)
    for solver in (LevelKMeans(3), LevelKMeans(3, chunk_bytes=1024, dense_max_centroids=0)):
        plan = solver.plan_blocks(x, sq, node, 6)
        assert (plan is None) == (solver.dense_max_centroids > 0)
        dist, nearest = solver.node_distances(x, sq, node, cents, valid, plan)
        assert torch.allclose(dist, brute, atol=1e-3) and torch.allclose(
            nearest, brute.min(1).values, atol=1e-3
        )


def test_load_refuses_malformed_vocabularies(tmp_path):
    from safetensors.torch import save_file

    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(10))
    tree = HierarchicalKMeans(k=2, depth=2, seed=0).fit(x)
    good = tmp_path / "good.safetensors"
    tree.save(good)
    back = HierarchicalKMeans.load(good)
    tensors = {
        f"{name}.{level}": getattr(back, name)[level - 1]
        for name in ("centroids", "counts")
        for level in (1, 2)
    }
    tensors.update({f"valid.{level}": back.valid[level - 1].to(torch.uint8) for level in (1, 2)})
    cases = {
        "version": ({**back.metadata, "format_version": "99"}, tensors, "format version"),
        "foreign": ({**back.metadata, "format": "other"}, tensors, "not a vbert vocabulary"),
        "badk": ({**back.metadata, "k": "twelve"}, tensors, "bad vocabulary metadata"),
        "shape": ({**back.metadata, "dim": "5"}, tensors, "expected"),
        "missing": (back.metadata, {n: t for n, t in tensors.items() if n != "counts.2"}, "lacks"),
        "nan": (
            back.metadata,
            {**tensors, "centroids.2": tensors["centroids.2"].clone().fill_(float("nan"))},
            "level 2 has NaN or infinite centroids",
        ),
        "invalid": (
            back.metadata,
            {**tensors, "valid.1": torch.zeros_like(tensors["valid.1"])},
            "level 1 has no valid cluster",
        ),
    }
    for name, (meta, tens, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file({n: t.contiguous() for n, t in tens.items()}, str(path), metadata=meta)
        with pytest.raises(DataError, match=message) as err:
            HierarchicalKMeans.load(path)
        assert path.name in str(err.value)
