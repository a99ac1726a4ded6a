"""Text-to-video generation: given a sentence, fill masked video positions one at a time.

    [CLS] cut the tomato [>] [MASK] [MASK] [MASK] [MASK] [SEP]

Left to right, the first still-masked position gets the visual word the model predicts there
(greedy, or sampled with a temperature), restricted to the visual words, and the model runs again
with it filled in. Visual words are shown as the frame of their exemplar clip: the clip whose
feature lies nearest to the word's centroid (the paper's figure shows such nearest clips).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vbert.data.video import iter_frames
from vbert.errors import DataError, VbertError


@torch.no_grad()
def fill_visual_masks(
    model: Any,
    vocab: Any,
    ids: list[int],
    types: list[int],
    positions: Sequence[int],
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Fill `positions` of one sequence left to right with visual words; returns the words (not joint ids)."""
    model.eval()
    device = next(model.parameters()).device
    ids_t = torch.tensor([ids], device=device)  # [1, L]
    types_t = torch.tensor([types], device=device)  # [1, L]
    words = []
    for pos in positions:
        hidden = model.bert(ids_t, types_t, None)  # [1, L, H]
        logits = model.mlm.mlm_logits(hidden[0, pos])[vocab.text_size : vocab.next_id].float()  # [K]
        if temperature > 0:
            word = int(torch.multinomial((logits / temperature).softmax(-1).cpu(), 1, generator=generator))
        else:
            word = int(logits.argmax())
        ids_t[0, pos] = vocab.text_size + word
        words.append(word)
    return words


def text_to_video(
    model: Any,
    tokenizer: Any,
    vocab: Any,
    sentence: str,
    num_words: int = 8,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[int]:
    """The visual words VideoBERT writes for a sentence: [CLS] text [>] [MASK] x num_words [SEP]."""
    text = tokenizer(sentence, add_special_tokens=False)["input_ids"]
    if not text:
        raise VbertError("text-to-video needs a non-empty sentence")
    if num_words < 1:
        raise VbertError(f"num_words must be at least 1, got {num_words}")
    ids, types = (row.tolist() for row in vocab.sequence(text, [vocab.mask_id] * num_words))
    if len(ids) > model.config.max_position_embeddings:
        raise VbertError(
            f"sentence plus {num_words} words exceeds the model's "
            f"{model.config.max_position_embeddings} positions"
        )
    start = len(text) + 2
    generator = torch.Generator().manual_seed(seed)
    return fill_visual_masks(
        model, vocab, ids, types, range(start, start + num_words), temperature, generator
    )


def word_labels(segments: Sequence[Any], field: str) -> dict[int, str]:
    """The `field` ("verb" or "noun") each visual word most often belongs to, over labelled segments."""
    counts: dict[int, Counter] = {}
    for segment in segments:
        label = getattr(segment, field)
        if label:
            for word in segment.video_words:
                counts.setdefault(int(word), Counter())[label] += 1
    return {word: c.most_common(1)[0][0] for word, c in counts.items()}


def purity(words: Sequence[int], labels: dict[int, str], target: str | None) -> float:
    """Share of `words` whose label (`word_labels`) is `target` (a word never labelled counts as wrong)."""
    return sum(labels.get(int(w)) == target for w in words) / max(1, len(words))


def generation_table(
    model: Any,
    tokenizer: Any,
    vocab: Any,
    segments: Sequence[Any],
    train_segments: Sequence[Any],
    num_words: int = 6,
    temperatures: Sequence[float] = (0.0, 0.7),
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Text to video measured: per decoding, the mean number of distinct words of a generation and
    how many of its words belong to the sentence's verb and noun (`word_labels` of the training
    segments); beside them the segment's own words and random words, the same measures.

    Each validation segment's first reference caption is the sentence; `num_words` words are written.
    """
    verb_of, noun_of = word_labels(train_segments, "verb"), word_labels(train_segments, "noun")
    rng = np.random.default_rng(seed)
    systems: dict[str, list[list[int]]] = {}
    for t in temperatures:
        name = "greedy" if t == 0 else f"sampled, temperature {t:g}"
        systems[name] = [
            text_to_video(model, tokenizer, vocab, s.sentence, num_words, temperature=t, seed=seed + i)
            for i, s in enumerate(segments)
        ]
    systems["the segment's own words"] = [list(s.video_words) for s in segments]
    systems["random words"] = [rng.integers(0, vocab.visual_size, num_words).tolist() for _ in segments]
    rows = {}
    for name, generated in systems.items():
        rows[name] = {
            "distinct words": float(np.mean([len(set(g)) for g in generated])),
            "verb purity": 100.0
            * float(np.mean([purity(g, verb_of, s.verb) for g, s in zip(generated, segments)])),
            "noun purity": 100.0
            * float(np.mean([purity(g, noun_of, s.noun) for g, s in zip(generated, segments)])),
        }
    return rows


def exemplar_clips(
    records: Sequence[dict], store: Any, centroids: np.ndarray
) -> dict[int, tuple[str, float, float]]:
    """For each visual word, the clip (video id, start, end) whose feature is nearest to its centroid."""
    best: dict[int, tuple[float, tuple[str, float, float]]] = {}
    for record in records:
        try:
            vectors, starts, ends = store.clips_of(record["video_id"])
        except KeyError:
            continue
        words = np.asarray(record["words"])
        if len(words) and int(words.max()) >= len(centroids):
            raise DataError(
                f"video {record['video_id']}: visual word {int(words.max())} is outside a vocabulary of "
                f"{len(centroids)} words: the tokens were made with another vocabulary (tokenize again)"
            )
        if len(words) != len(vectors):
            raise DataError(
                f"video {record['video_id']}: {len(words)} visual words but {len(vectors)} clip features"
            )
        distances = np.linalg.norm(vectors - centroids[words], axis=1)  # [n]
        for i, (w, d) in enumerate(zip(words.tolist(), distances.tolist())):
            if w not in best or d < best[w][0]:
                best[w] = (d, (record["video_id"], float(starts[i]), float(ends[i])))
    return {w: clip for w, (_, clip) in best.items()}


def clip_frame(video_path: str | Path, start: float, end: float, size: int = 64) -> np.ndarray:
    """The middle frame [size, size, 3] uint8 RGB of a clip of a video file."""
    middle = (start + end) / 2
    last = None
    for frame, time in iter_frames(video_path, fps=20.0, size=size):
        last = frame
        if time >= middle:
            break
    if last is None:
        raise DataError(f"{video_path}: no frame could be decoded")
    return last
