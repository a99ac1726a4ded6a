"""Text-to-video retrieval: rank the validation videos for a sentence by VideoBERT's alignment score.

A video is longer than the model's input, so it is cut into windows of visual words (as long as
the sentence leaves room for, half-overlapping); a video's score for a sentence is the best
alignment probability over its windows. Recall@k is the share of sentences whose own video is
among the k best-ranked videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vbert.errors import VbertError


def recall_at_k(
    scores: np.ndarray, targets: Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """scores [Q, C] (higher is better), targets [Q] gold candidate index -> {'R@k': percent}."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.ndim != 2 or len(scores) != len(targets) or len(scores) == 0:
        raise VbertError(
            f"recall@k needs a [queries, candidates] score matrix matching {len(targets)} targets"
        )
    gold = scores[np.arange(len(scores)), targets][:, None]
    rank = (scores > gold).sum(1)  # [Q] candidates strictly better than the gold one (ties favour it)
    return {f"R@{k}": 100.0 * float((rank < k).mean()) for k in ks}


def windows(words: Sequence[int], width: int) -> list[list[int]]:
    """Half-overlapping windows of `width` words covering the sequence (one window if short)."""
    words = list(words)
    if len(words) <= width:
        return [words]
    step = max(1, width // 2)
    starts = list(range(0, len(words) - width + 1, step))
    if starts[-1] != len(words) - width:
        starts.append(len(words) - width)
    return [words[s : s + width] for s in starts]


def retrieval_scores(
    model: Any,
    tokenizer: Any,
    vocab: Any,
    sentences: Sequence[str],
    videos: Sequence[Sequence[int]],
    max_len: int = 128,
    window: int | None = None,
) -> np.ndarray:
    """[Q, C]: for each sentence and video, the best alignment probability over the video's windows."""
    from vbert.tasks.embeddings import alignment_scores

    width = window or max_len // 2 - 1
    pieces = [(c, w) for c, video in enumerate(videos) for w in windows(video, width)]
    if not pieces:
        raise VbertError("retrieval: no candidate video has visual words")
    pairs = [(s, w) for s in sentences for _, w in pieces]
    flat = alignment_scores(model, tokenizer, vocab, pairs, max_len)  # [Q * W]
    per_window = flat.reshape(len(sentences), len(pieces))
    out = np.full((len(sentences), len(videos)), -np.inf)
    for j, (c, _) in enumerate(pieces):
        out[:, c] = np.maximum(out[:, c], per_window[:, j])
    return out
