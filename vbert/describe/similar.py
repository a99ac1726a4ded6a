"""Videos like this one: the run's dataset ranked by a VideoBERT video embedding, and by a watch history.

The VideoBERT video embedding of a video is the encoder's output at its video tokens, averaged over
the whole video (`vbert.tasks.embeddings.mean_video`: `[CLS] v... [SEP]` in windows that fit the
model). Videos are compared by cosine similarity. Two baselines rank the same candidates: the mean
of a video's clip features (what the extractor alone gives) and a random order.

- `similar_videos(run, words, n)`: the n videos of the run's dataset nearest one video's words.
- `recommend(history, run, n)`: the n videos nearest the mean of a watch history's embeddings (unit
  length each), the history itself left out; history items are video ids of the run's dataset or
  video files (described first).
- `same_recipe_precision(run, ...)`: precision@k of same-recipe neighbours for each embedding, the
  measurement behind docs/benchmarks.md ("Videos like this one").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vbert.config import Config
from vbert.describe.run import DEFAULT_RUN, FinishedRun, as_run
from vbert.describe.words import video_words
from vbert.errors import VbertError
from vbert.features.store import FeatureStore
from vbert.tasks.data import load_videos
from vbert.tasks.embeddings import mean_video

METHODS = ("VideoBERT", "mean clip features", "random")


@dataclass
class DatasetVideos:
    """The run's dataset videos: ids, recipe types, subsets, words, and both embeddings."""

    ids: list[str]
    recipes: np.ndarray  # [N] recipe type of each video
    subsets: np.ndarray  # [N] "training" / "validation"
    words: list[list[int]]
    videobert: np.ndarray  # [N, H] unit rows
    clips: np.ndarray  # [N, D] unit rows: mean clip feature


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity is then a dot product): [N, D] -> [N, D]."""
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(min=1e-12)


def videobert_embedding(run: FinishedRun, videos: Sequence[Sequence[int]]) -> np.ndarray:
    """[N, H] unit VideoBERT embeddings of videos given as visual words."""
    return unit_rows(mean_video(run.model, run.vocab, videos, run.config.pretrain.max_seq_len))


def dataset_videos(run: FinishedRun) -> DatasetVideos:
    """Every video of the run's token file with its embeddings (computed once per opened run)."""
    if "dataset" not in run.cache:
        videos = load_videos(run.tokens, None)
        store = FeatureStore(run.features)
        clips = np.stack([store.clips_of(v.video_id)[0].astype(np.float32).mean(0) for v in videos])  # [N, D]
        run.cache["dataset"] = DatasetVideos(
            [v.video_id for v in videos],
            np.array([v.recipe_type for v in videos]),
            np.array([v.subset for v in videos]),
            [v.words for v in videos],
            videobert_embedding(run, [v.words for v in videos]),
            unit_rows(clips),
        )
    return run.cache["dataset"]


def rank(
    query: np.ndarray, candidates: np.ndarray, exclude: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-row candidates [N, D] by cosine similarity to one query [D], best first: (indices [M], similarities [M])."""
    similarity = candidates @ unit_rows(query[None])[0]  # [N]
    similarity[list(exclude)] = -np.inf
    order = np.argsort(-similarity, kind="stable")
    order = order[np.isfinite(similarity[order])]
    return order, similarity[order]


def _listing(data: DatasetVideos, order: np.ndarray, similarity: np.ndarray, n: int) -> list[dict[str, Any]]:
    return [
        {
            "video_id": data.ids[i],
            "recipe_type": str(data.recipes[i]),
            "subset": str(data.subsets[i]),
            "similarity": round(float(s), 4),
        }
        for i, s in zip(order[:n], similarity[:n])
    ]


def similar_videos(
    run: FinishedRun, words: Sequence[int], n: int = 5, exclude: Sequence[str] = ()
) -> list[dict]:
    """The `n` videos of the run's dataset nearest a video's visual words (VideoBERT embedding, cosine)."""
    data = dataset_videos(run)
    query = videobert_embedding(run, [list(words)])[0]
    order, similarity = rank(query, data.videobert, [data.ids.index(v) for v in exclude if v in data.ids])
    return _listing(data, order, similarity, n)


def recommend(
    history: Sequence[str | Path], run: FinishedRun | Config | str | Path = DEFAULT_RUN, n: int = 10
) -> list[dict[str, Any]]:
    """Rank the run's dataset for a watch history: the `n` videos nearest the history's mean embedding.

    Each history item is a video id of the run's dataset or a video file (described with the run).
    The history's videos are left out of the ranking.
    """
    run = as_run(run)
    if not history:
        raise VbertError("a watch history needs at least one video")
    data = dataset_videos(run)
    rows, seen = [], []
    for item in history:
        if str(item) in data.ids:
            seen.append(data.ids.index(str(item)))
            rows.append(data.videobert[seen[-1]])
        else:
            rows.append(videobert_embedding(run, [video_words(item, run).words])[0])
    order, similarity = rank(unit_rows(np.stack(rows)).mean(0), data.videobert, seen)
    return _listing(data, order, similarity, n)


# ---------------------------------------------------------------- how good is it: same recipe among the nearest


def _precision(
    query: np.ndarray, candidates: np.ndarray, recipes: np.ndarray, rows: np.ndarray, k: int
) -> float:
    """Percent of the k nearest candidates that share the recipe of each query (query i is candidate rows[i])."""
    similarity = unit_rows(query) @ candidates.T  # [Q, N]
    similarity[np.arange(len(rows)), rows] = -np.inf  # a video is not its own neighbour
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]  # [Q, k]
    return 100.0 * float((recipes[nearest] == recipes[rows, None]).mean())


def same_recipe_precision(
    run: FinishedRun | Config | str | Path = DEFAULT_RUN,
    k: int = 5,
    subsets: Sequence[str] | None = ("validation",),
    glimpse: int | None = None,
    seeds: int = 100,
) -> dict[str, Any]:
    """Precision@k of same-recipe videos among each query's k nearest, per embedding (percent).

    Queries are the videos of `subsets` (None: every video), each ranked against every other video of
    the run's dataset; with `glimpse`, a query is only its first `glimpse` clips. Returns "rows": per
    method of `METHODS`, {"mean", "std"} (for "random", over `seeds` random orders; else std 0), and
    "queries", "candidates", "k", "glimpse".
    """
    run = as_run(run)
    data = dataset_videos(run)
    rows = (
        np.flatnonzero(np.isin(data.subsets, list(subsets)))
        if subsets is not None
        else np.arange(len(data.ids))
    )
    if len(rows) == 0 or len(data.ids) <= k:
        raise VbertError(f"{run.tokens}: too few videos to rank {k} neighbours of each query")
    if glimpse is None:
        queries = {"VideoBERT": data.videobert[rows], "mean clip features": data.clips[rows]}
    else:
        store = FeatureStore(run.features)
        clip_means = [store.clips_of(data.ids[i])[0][:glimpse].astype(np.float32).mean(0) for i in rows]
        queries = {
            "VideoBERT": videobert_embedding(run, [data.words[i][:glimpse] for i in rows]),
            "mean clip features": np.stack(clip_means),
        }
    table: dict[str, dict[str, float]] = {}
    for name, candidates in (("VideoBERT", data.videobert), ("mean clip features", data.clips)):
        table[name] = {"mean": _precision(queries[name], candidates, data.recipes, rows, k), "std": 0.0}
    random = []
    for seed in range(seeds):  # a random order: random points, ranked the same way
        points = unit_rows(np.random.default_rng(seed).standard_normal((len(data.ids), 16)))
        random.append(_precision(points[rows], points, data.recipes, rows, k))
    table["random"] = {"mean": float(np.mean(random)), "std": float(np.std(random))}
    return {"rows": table, "queries": len(rows), "candidates": len(data.ids) - 1, "k": k, "glimpse": glimpse}
