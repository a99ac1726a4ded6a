"""Features read out of a pretrained VideoBERT for the downstream probes and the captioner.

- `caption_features`: the paper's captioning features. The input is a fill-in template followed
  by the segment's visual words, `[CLS] now let's [MASK] the [MASK] to the [MASK], and then [MASK]
  the [MASK] [>] v... [SEP]`; the outputs at the segment's video tokens are averaged, the outputs
  at the masked slots are averaged, and the two are concatenated -> [2H]. Our addition (not in the
  paper): the neighbouring clips' words can follow as context (`context`), so that the encoder reads
  the segment in its video, which is what a model of the whole video can add to one clip's features.
- `pooled_video`: BERT's pooled [CLS] output of a video-only sequence `[CLS] v... [SEP]` -> [H]
  (for recipe classification); long videos are cut into windows that fit the model, whose pooled
  outputs are averaged.
- `mean_video`: the encoder's outputs at the video tokens of the same sequences, averaged over every
  token of the video -> [H]: the VideoBERT video embedding of "videos like this one"
  (`vbert.describe.similar`). Unlike the pooled [CLS], it needs no trained pooler (the tiny preset
  trains none) and it ranked same-recipe videos better from a few clips (docs/benchmarks.md).
- `alignment_scores`: the linguistic-visual alignment probability of (sentence, visual words) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vbert.errors import VbertError
from vbert.tasks.zero_shot import MASK, build_input

CAPTION_TEMPLATE = "now let's [MASK] the [MASK] to the [MASK], and then [MASK] the [MASK]"


def _batches(rows: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int, device: torch.device):
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(r[0]) for r in chunk)
        ids = torch.tensor([r[0] + [pad_id] * (width - len(r[0])) for r in chunk], device=device)  # [B, L]
        types = torch.tensor([r[1] + [0] * (width - len(r[1])) for r in chunk], device=device)  # [B, L]
        mask = (ids != pad_id).long()
        yield start, ids, types, mask


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def in_context(
    own: Sequence[int], before: Sequence[int], after: Sequence[int], room: int
) -> tuple[list[int], list[bool]]:
    """A segment's words between its neighbours' (as many as fit in `room`, as evenly as they allow).

    Returns (words, is_own): the segment's own words are kept whole (cut to `room` when longer).
    """
    own = list(own)[:room]
    left = room - len(own)
    take_before = min(len(before), max(left // 2, left - len(after)))
    take_after = min(len(after), left - take_before)
    head = list(before)[len(before) - take_before :]
    words = head + own + list(after)[:take_after]
    return words, [False] * len(head) + [True] * len(own) + [False] * take_after


@torch.no_grad()
def caption_features(
    model: Any,
    tokenizer: Any,
    vocab: Any,
    videos: Sequence[Sequence[int]],
    template: str = CAPTION_TEMPLATE,
    max_len: int = 128,
    batch_size: int = 64,
    context: Sequence[tuple[Sequence[int], Sequence[int]]] | None = None,
) -> np.ndarray:
    """[N, 2H]: mean output at the segment's video tokens ++ mean output at the template's [MASK]s.

    With `context` (per segment: the video words before it and after it), the neighbours' words
    follow the template too, so that the encoder reads the segment in its video; the mean is still
    taken over the segment's own tokens only.
    """
    if MASK not in template:
        raise VbertError(f"caption feature template {template!r} has no {MASK} slot")
    text = list(tokenizer(template, add_special_tokens=False)["input_ids"])
    room = max_len - len(text) - 3  # [CLS] template [>] video [SEP]
    if room < 1:
        raise VbertError(f"the caption template takes {len(text)} tokens; no room for video within {max_len}")
    model.eval()
    rows, own_masks = [], []
    for n, words in enumerate(videos):
        before, after = context[n] if context is not None else ((), ())
        seq, is_own = in_context(words, before, after, room)
        rows.append(build_input(text, seq, vocab, max_len))
        own_masks.append([False] * (len(text) + 2) + is_own + [False])  # [CLS] text [>] ... [SEP]
    out = np.zeros((len(rows), 2 * model.config.hidden_size), np.float32)
    for start, ids, types, mask in _batches(rows, vocab.pad_id, batch_size, _device(model)):
        hidden = model.bert(ids, types, mask).float()  # [B, L, H]
        chunk = own_masks[start : start + len(ids)]
        own = torch.zeros(ids.shape, device=ids.device)  # [B, L]
        for i, flags in enumerate(chunk):
            own[i, : len(flags)] = torch.tensor(flags, dtype=torch.float32)
        own = own[..., None]  # [B, L, 1]
        is_slot = (ids == vocab.mask_id).float()[..., None]  # [B, L, 1]
        video_mean = (hidden * own).sum(1) / own.sum(1).clamp(min=1)  # [B, H]
        slot_mean = (hidden * is_slot).sum(1) / is_slot.sum(1).clamp(min=1)  # [B, H]
        out[start : start + len(ids)] = torch.cat([video_mean, slot_mean], -1).cpu().numpy()
    return out


def _video_only(words: Sequence[int], vocab: Any) -> tuple[list[int], list[int]]:
    ids, types = vocab.sequence(video=vocab.visual_ids(words))
    return ids.tolist(), types.tolist()


def _video_windows(
    videos: Sequence[Sequence[int]], vocab: Any, max_len: int
) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """Video-only input rows of windows of max_len - 2 words, and the video each row belongs to."""
    width = max_len - 2
    rows, owner = [], []
    for n, words in enumerate(videos):
        words = list(words)
        if not words:
            raise VbertError(f"video {n} has no visual words to embed")
        for start in range(0, len(words), width):
            rows.append(_video_only(words[start : start + width], vocab))
            owner.append(n)
    return rows, owner


@torch.no_grad()
def pooled_video(
    model: Any, vocab: Any, videos: Sequence[Sequence[int]], max_len: int = 128, batch_size: int = 64
) -> np.ndarray:
    """[N, H]: pooled [CLS] output of each video's words (windows of max_len - 2 words, averaged)."""
    model.eval()
    rows, owner = _video_windows(videos, vocab, max_len)
    pooled = np.zeros((len(rows), model.config.hidden_size), np.float32)
    for start, ids, types, mask in _batches(rows, vocab.pad_id, batch_size, _device(model)):
        hidden = model.bert(ids, types, mask)  # [B, L, H]
        pooled[start : start + len(ids)] = model.bert.pool(hidden).float().cpu().numpy()
    out = np.zeros((len(videos), pooled.shape[1]), np.float32)
    counts = np.bincount(owner, minlength=len(videos))[:, None]
    np.add.at(out, owner, pooled)
    return out / counts


@torch.no_grad()
def mean_video(
    model: Any, vocab: Any, videos: Sequence[Sequence[int]], max_len: int = 128, batch_size: int = 64
) -> np.ndarray:
    """[N, H]: the encoder's output at each video token of `[CLS] v... [SEP]`, averaged over the whole video."""
    model.eval()
    rows, owner = _video_windows(videos, vocab, max_len)
    sums = np.zeros((len(videos), model.config.hidden_size), np.float64)
    counts = np.zeros(len(videos), np.float64)
    for start, ids, types, mask in _batches(rows, vocab.pad_id, batch_size, _device(model)):
        hidden = model.bert(ids, types, mask).float()  # [B, L, H]
        is_video = ((ids >= vocab.text_size) & (ids < vocab.next_id)).float()[..., None]  # [B, L, 1]
        chunk = owner[start : start + len(ids)]
        np.add.at(sums, chunk, (hidden * is_video).sum(1).cpu().double().numpy())  # [B, H] per window
        np.add.at(counts, chunk, is_video.sum((1, 2)).cpu().double().numpy())
    return (sums / counts[:, None]).astype(np.float32)


@torch.no_grad()
def alignment_scores(
    model: Any,
    tokenizer: Any,
    vocab: Any,
    pairs: Sequence[tuple[str, Sequence[int]]],
    max_len: int = 128,
    batch_size: int = 64,
) -> np.ndarray:
    """[N] probability that each sentence describes its visual words (the alignment head on [CLS])."""
    texts = tokenizer([p[0] for p in pairs], add_special_tokens=False)["input_ids"] if pairs else []
    rows = [alignment_input(t, words, vocab, max_len) for t, (_, words) in zip(texts, pairs)]
    return alignment_of_rows(model, rows, vocab.pad_id, batch_size)


def alignment_input(
    text_ids: Sequence[int], words: Sequence[int], vocab: Any, max_len: int
) -> tuple[list[int], list[int]]:
    """`[CLS] sentence [>] words [SEP]` (ids, token types): the sentence keeps at most half of max_len."""
    return build_input(list(text_ids)[: max_len // 2], list(words), vocab, max_len)


@torch.no_grad()
def alignment_of_rows(
    model: Any, rows: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int = 64
) -> np.ndarray:
    """[N] alignment probability of input rows already built (ids, token types)."""
    model.eval()
    out = np.zeros(len(rows), np.float32)
    for start, ids, types, mask in _batches(list(rows), pad_id, batch_size, _device(model)):
        _, aligned = model.predict(ids, types, mask)  # [B]
        out[start : start + len(ids)] = aligned.float().cpu().numpy()
    return out
