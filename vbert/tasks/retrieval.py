"""Text-to-video retrieval: rank the validation segments for a caption by VideoBERT's alignment score.

The protocol of text-to-clip retrieval on YouCook2 (as HowTo100M reports it): each validation
segment's caption is a query, and the candidates are every validation segment's visual words; the
alignment head scores `[CLS] caption [>] words [SEP]`. A segment longer than the model's input is
cut into windows (as long as the sentence leaves room for, half-overlapping) and keeps its best.
Recall@k is the share of captions whose own segment is among the k best-ranked.

Several segments can show the same verb and noun, and a model that reads only those cannot tell
them apart: `label_reader_recall` gives what such a reader reaches, the level to read recall against
(a model could pass it only by reading more than the action: the container, the kitchen).

Every caption is scored against every candidate, so the cost grows with the square of the number of
validation videos: with more of them than `eval.retrieval_max_videos`, retrieval ranks the segments
of a seeded sample of that many (`candidate_pool`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from vbert.errors import VbertError
from vbert.tasks.embeddings import alignment_input, alignment_of_rows


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


def label_reader_recall(labels: Sequence[Any], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k of a reader that knows each candidate's label exactly (ties broken at random).

    labels [C]: one label per candidate, each query's target being its own candidate; a query whose
    label n candidates share finds its own among the first k with probability min(1, k / n).
    """
    counts = Counter(labels)
    if not counts:
        raise VbertError("label_reader_recall needs at least one candidate")
    return {f"R@{k}": 100.0 * float(np.mean([min(1.0, k / counts[label]) for label in labels])) for k in ks}


def candidate_pool(num_videos: int, max_videos: int, seed: int) -> list[int]:
    """Indices of the videos retrieval ranks: all of them, or a seeded sample of max_videos (0: no cap)."""
    if max_videos < 0:
        raise VbertError(f"eval.retrieval_max_videos must be 0 (no cap) or positive, not {max_videos}")
    if max_videos == 0 or num_videos <= max_videos:
        return list(range(num_videos))
    return sorted(random.Random(seed).sample(range(num_videos), max_videos))


def retrieval_scores(
    model: Any,
    tokenizer: Any,
    vocab: Any,
    sentences: Sequence[str],
    candidates: Sequence[Sequence[int]],
    max_len: int = 128,
    window: int | None = None,
    batch_size: int = 64,
    pairs_per_chunk: int = 65536,
) -> np.ndarray:
    """[Q, C]: for each sentence and candidate (visual words), the best alignment probability over its windows.

    Sentences are tokenized once and the (sentence, window) inputs are built a chunk of about
    `pairs_per_chunk` at a time, so memory stays flat however many pairs there are.
    """
    width = window or max_len // 2 - 1
    pieces = [(c, w) for c, words in enumerate(candidates) for w in windows(words, width)]
    if not pieces:
        raise VbertError("retrieval: no candidate has visual words")
    owner = np.array([c for c, _ in pieces])  # [W] candidate of each window
    texts = tokenizer(list(sentences), add_special_tokens=False)["input_ids"] if len(sentences) else []
    out = np.full((len(sentences), len(candidates)), -np.inf)
    step = max(1, pairs_per_chunk // len(pieces))  # sentences per chunk
    for q0 in range(0, len(texts), step):
        chunk = texts[q0 : q0 + step]
        rows = [alignment_input(t, w, vocab, max_len) for t in chunk for _, w in pieces]
        per_window = alignment_of_rows(model, rows, vocab.pad_id, batch_size).reshape(len(chunk), -1)
        best = np.full((len(candidates), len(chunk)), -np.inf)  # [C, q]
        np.maximum.at(best, owner, per_window.T)  # each candidate keeps its best window
        out[q0 : q0 + len(chunk)] = best.T
    return out
