"""Looking at visual words: mosaics of the clips nearest a word's centroid, and cluster purity.

The paper shows, for a few visual words, the middle frames of clips that fall in the word: a
good vocabulary groups clips that look and move alike. Purity puts a number on it: label every
clip with the verb (or noun) of the ground-truth segment it lies in; a word's purity is the
share of its clips that carry its most frequent label; the vocabulary's purity is the average
over clips. Purity rises with the number of words by itself (a word per clip is pure), so it is
reported next to the purity of the same words shuffled across clips (chance).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vbert.data.dataset import VideoRecord
from vbert.data.video import read_clips
from vbert.features.store import FeatureStore
from vbert.visual_words.kmeans import HierarchicalKMeans
from vbert.visual_words.tokenize import clips_in_span


def clips_nearest_word(
    tree: HierarchicalKMeans, vectors: torch.Tensor, word: int, n: int = 16, words: torch.Tensor | None = None
) -> np.ndarray:
    """Indices of at most `n` clips assigned to `word`, nearest its centroid first."""
    words = tree.assign(vectors) if words is None else torch.as_tensor(words)
    members = torch.nonzero(words == word).squeeze(1)  # [m]
    if len(members) == 0:
        return np.zeros(0, dtype=np.int64)
    centre = tree.leaf_centroids[word].cpu()  # [D]
    dist = ((vectors[members].float() - centre) ** 2).sum(1)  # [m]
    return members[torch.argsort(dist)[:n]].numpy()


def middle_frames(
    clips: list[tuple[str | Path, float]], fps: float = 20.0, clip_frames: int = 30, size: int = 112
) -> np.ndarray:
    """Middle frame of each (video path, clip start) clip, decoded with vbert.data.video: uint8 [n, S, S, 3]."""
    by_video: dict[str, list[int]] = {}
    for i, (path, _) in enumerate(clips):
        by_video.setdefault(str(path), []).append(i)
    out = np.zeros((len(clips), size, size, 3), dtype=np.uint8)
    for path, indices in by_video.items():  # decode each video once
        decoded = read_clips(path, fps=fps, clip_frames=clip_frames, size=size)
        for i in indices:
            c = int(np.argmin(np.abs(decoded.starts - clips[i][1])))
            out[i] = decoded.frames[c, clip_frames // 2]
    return out


def mosaic(frames: np.ndarray, cols: int = 4, pad: int = 2) -> np.ndarray:
    """Tile frames uint8 [n, H, W, 3] into one image [rows*(H+pad)-pad, cols*(W+pad)-pad, 3] (white gaps)."""
    n, h, w, _ = frames.shape
    rows = max(1, -(-n // cols))
    image = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        image[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = frames[i]
    return image


def labelled_clips(records: list[dict], field: str = "verb") -> tuple[np.ndarray, list[str]]:
    """(visual words [n], labels) of the clips inside ground-truth segments that carry `field`."""
    words, labels = [], []
    for record in records:
        for segment in record.get("segments", []):
            label = segment.get(field)
            if label:
                words += segment["video_words"]
                labels += [label] * len(segment["video_words"])
    return np.asarray(words, dtype=np.int64), labels


def clip_labels(
    store: FeatureStore, dataset: Sequence[VideoRecord], field: str = "verb"
) -> tuple[np.ndarray, list[str]]:
    """(rows of a FeatureStore [n], labels) for the clips inside ground-truth segments that carry `field`.

    Uses the same span rule as `vbert tokenize`, so any tree's words for these clips are
    `words[rows]` (handy to compare vocabularies without writing token files).
    """
    by_video: dict[str, list[int]] = {}
    for i, video_id in enumerate(store.video_ids):
        by_video.setdefault(video_id, []).append(i)
    rows, labels = [], []
    for video_id, idx in by_video.items():
        record = dataset.videos.get(video_id)
        if record is None:
            continue
        idx = np.asarray(idx)[np.argsort(store.starts[idx], kind="stable")]
        for segment in record.segments:
            label = getattr(segment, field)
            if label:
                inside = idx[clips_in_span(store.starts[idx], store.ends[idx], segment.start, segment.end)]
                rows += inside.tolist()
                labels += [label] * len(inside)
    return np.asarray(rows, dtype=np.int64), labels


def cluster_purity(words: np.ndarray, labels: list[str]) -> float:
    """Share of clips whose label is the most frequent label of their word (1.0 = every word pure)."""
    if len(words) != len(labels):
        raise ValueError(f"{len(words)} words but {len(labels)} labels")
    if len(words) == 0:
        return float("nan")
    counts: dict[int, Counter] = {}
    for w, label in zip(np.asarray(words).tolist(), labels):
        counts.setdefault(w, Counter())[label] += 1
    return sum(c.most_common(1)[0][1] for c in counts.values()) / len(words)


def chance_purity(words: np.ndarray, labels: list[str], repeats: int = 10, seed: int = 0) -> float:
    """Purity of the same words shuffled across the clips (same word sizes, no relation to labels)."""
    rng = np.random.default_rng(seed)
    words = np.asarray(words)
    return float(np.mean([cluster_purity(rng.permutation(words), labels) for _ in range(repeats)]))


def word_purities(words: np.ndarray, labels: list[str]) -> dict[int, tuple[int, str, float]]:
    """Per word: (clips, most frequent label, share of clips carrying it)."""
    counts: dict[int, Counter] = {}
    for w, label in zip(np.asarray(words).tolist(), labels):
        counts.setdefault(w, Counter())[label] += 1
    out = {}
    for w, c in counts.items():
        label, top = c.most_common(1)[0]
        out[w] = (sum(c.values()), label, top / sum(c.values()))
    return out
