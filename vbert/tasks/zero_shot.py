"""Zero-shot action classification (the paper's Table 1): fill a template's two [MASK] slots.

The paper's protocol: the fixed sentence "now let me show you how to [MASK] the [MASK]", then `[>]`
and the segment's visual words:

    [CLS] now let me show you how to [MASK] the [MASK] [>] v3 v3 v17 v5 [SEP]

The verb is read from the first slot and the noun from the second, each ranked over its label
set; top-1 and top-5 accuracy on the validation split. The same code gives the "language prior"
rows: the template alone, `[CLS] template [SEP]`, with no video.

Multi-WordPiece labels (documented rule): a label of n WordPieces is scored with its slot widened
to n [MASK]s, as the mean of the log-probabilities of its pieces at those n positions (each slot
predicted independently, as BERT's masked LM does), the other slot staying one [MASK]. A label
whose pieces include [UNK] is absent from the vocabulary: that is an error naming the labels
(or, with `drop_unknown=True`, the labels are dropped with a warning).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vbert.bert.model import BertForMaskedLM
from vbert.errors import VbertError
from vbert.pretraining.joint_vocab import JointVocab

MASK = "[MASK]"


@dataclass(frozen=True)
class Template:
    """A template cut at its two [MASK] slots: prefix [MASK] middle [MASK] suffix."""

    text: str
    prefix: str
    middle: str
    suffix: str


def parse_template(text: str) -> Template:
    """Split a template with exactly two [MASK] slots; anything else is a VbertError."""
    count = text.count(MASK)
    if count != 2:
        raise VbertError(
            f"zero-shot template {text!r} has {count} {MASK} slot(s); it needs exactly two "
            f"(the first for the verb, the second for the noun)"
        )
    prefix, middle, suffix = text.split(MASK)
    return Template(text, prefix.strip(), middle.strip(), suffix.strip())


@dataclass
class LabelSet:
    """Labels (verbs or nouns) and their WordPiece ids; `pieces[i]` are label i's ids."""

    names: list[str]
    pieces: list[list[int]]

    def lengths(self) -> list[int]:
        """Distinct piece counts, sorted."""
        return sorted({len(p) for p in self.pieces})


def encode_labels(
    names: Sequence[str], tokenizer: Any, kind: str = "label", drop_unknown: bool = False
) -> LabelSet:
    """Tokenize each label; labels with [UNK] pieces (absent from the vocabulary) are an error or dropped."""
    unk = tokenizer.convert_tokens_to_ids("[UNK]")
    kept, pieces, absent = [], [], []
    for name in names:
        ids = tokenizer(name, add_special_tokens=False)["input_ids"]
        if not ids or unk in ids:
            absent.append(name)
            continue
        kept.append(name)
        pieces.append(list(ids))
    if absent:
        message = (
            f"{len(absent)} {kind} label(s) are absent from the text vocabulary "
            f"(they tokenize to [UNK] or to nothing): {', '.join(repr(a) for a in absent)}"
        )
        if not drop_unknown:
            raise VbertError(
                message + "; use a vocabulary that contains them or drop them (drop_unknown=True)"
            )
        warnings.warn(message + "; dropped", RuntimeWarning, stacklevel=2)
    if not kept:
        raise VbertError(f"no {kind} label is in the text vocabulary")
    return LabelSet(kept, pieces)


def _template_ids(
    template: Template, tokenizer: Any, verb_slots: int, noun_slots: int, mask_id: int
) -> tuple[list[int], list[int], list[int]]:
    """Text ids of the template with slots widened; also the verb and noun slot positions (in the text)."""

    def enc(s: str) -> list[int]:
        return list(tokenizer(s, add_special_tokens=False)["input_ids"]) if s else []

    prefix, middle, suffix = enc(template.prefix), enc(template.middle), enc(template.suffix)
    verb_pos = list(range(len(prefix), len(prefix) + verb_slots))
    start = len(prefix) + verb_slots + len(middle)
    noun_pos = list(range(start, start + noun_slots))
    ids = prefix + [mask_id] * verb_slots + middle + [mask_id] * noun_slots + suffix
    return ids, verb_pos, noun_pos


def build_input(
    text_ids: list[int], video_words: Sequence[int] | None, vocab: JointVocab, max_len: int
) -> tuple[list[int], list[int]]:
    """[CLS] text [>] video [SEP] (or [CLS] text [SEP] when video_words is None) -> (ids, token types).

    Visual words are joint-vocabulary offsets; the video is cut to fit `max_len`.
    """
    if video_words is None:
        ids, types = vocab.sequence(text=text_ids)
        return ids.tolist(), types.tolist()
    room = max_len - len(text_ids) - 3
    if room < 1:
        raise VbertError(f"the template takes {len(text_ids) + 1} tokens; no room for video within {max_len}")
    ids, types = vocab.sequence(text_ids, vocab.visual_ids(list(video_words)[:room]))
    return ids.tolist(), types.tolist()


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


@torch.no_grad()
def slot_log_probs(
    mlm: BertForMaskedLM,
    inputs: list[tuple[list[int], list[int]]],
    positions: list[list[int]],
    text_size: int,
    pad_id: int = 0,
    batch_size: int = 64,
) -> list[torch.Tensor]:
    """Log-probabilities over the text vocabulary at each input's positions: [n_pos, V_text] each."""
    mlm.eval()
    device = next(mlm.parameters()).device
    out: list[torch.Tensor] = []
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size]
        ids = _pad([c[0] for c in chunk], pad_id).to(device)  # [B, L]
        types = _pad([c[1] for c in chunk], 0).to(device)  # [B, L]
        mask = (ids != pad_id).long() if any(len(c[0]) != ids.shape[1] for c in chunk) else None
        hidden = mlm.bert(ids, types, mask)  # [B, L, H]
        for b, pos in enumerate(positions[start : start + batch_size]):
            logits = mlm.mlm_logits(hidden[b, pos])[:, :text_size].float()  # [n_pos, V_text]
            out.append(logits.log_softmax(-1).cpu())
    return out


def rank_labels(log_probs: torch.Tensor, labels: LabelSet, length: int) -> dict[int, float]:
    """Mean log-probability of each label with `length` pieces, at a slot widened to `length` positions."""
    scores = {}
    for i, pieces in enumerate(labels.pieces):
        if len(pieces) == length:
            scores[i] = float(log_probs[torch.arange(length), torch.tensor(pieces)].mean())
    return scores


@dataclass
class ZeroShotScores:
    """Label scores for every example: verb [N, n_verbs] and noun [N, n_nouns] (higher is better)."""

    verbs: LabelSet
    nouns: LabelSet
    verb_scores: np.ndarray
    noun_scores: np.ndarray


def zero_shot_scores(
    mlm: BertForMaskedLM,
    tokenizer: Any,
    vocab: JointVocab,
    template: str,
    videos: Sequence[Sequence[int] | None],
    verbs: LabelSet,
    nouns: LabelSet,
    max_len: int = 128,
    batch_size: int = 64,
) -> ZeroShotScores:
    """Score every verb and noun label for each example's visual words (None = no video: language prior)."""
    tpl = parse_template(template)
    # One input per (example, slot widths): each verb length with a 1-slot noun, each noun length with
    # a 1-slot verb; (1, 1) serves both.
    widths = sorted({(n, 1) for n in verbs.lengths()} | {(1, n) for n in nouns.lengths()})
    inputs, positions, keys = [], [], []
    for e, words in enumerate(videos):
        for nv, nn in widths:
            text, vpos, npos = _template_ids(tpl, tokenizer, nv, nn, vocab.mask_id)
            ids, types = build_input(text, words, vocab, max_len)
            inputs.append((ids, types))
            positions.append([p + 1 for p in vpos + npos])  # +1 for [CLS]
            keys.append((e, nv, nn))
    log_probs = slot_log_probs(mlm, inputs, positions, vocab.text_size, vocab.pad_id, batch_size)
    verb_scores = np.full((len(videos), len(verbs.names)), -np.inf)
    noun_scores = np.full((len(videos), len(nouns.names)), -np.inf)
    for (e, nv, nn), lp in zip(keys, log_probs):
        if nn == 1:  # verb scores are read with the noun slot at its plain width
            for i, s in rank_labels(lp[:nv], verbs, nv).items():
                verb_scores[e, i] = s
        if nv == 1:
            for i, s in rank_labels(lp[nv:], nouns, nn).items():
                noun_scores[e, i] = s
    return ZeroShotScores(verbs, nouns, verb_scores, noun_scores)


def top_k_accuracy(scores: np.ndarray, targets: Sequence[int], k: int) -> float:
    """Share of rows whose target index is among the k highest scores (ties broken by index)."""
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if len(scores) == 0:
        raise VbertError("top-k accuracy of an empty set of examples")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # [N, k]
    return float((order == targets[:, None]).any(axis=1).mean())


def label_indices(names: Sequence[str | None], labels: Sequence[str]) -> np.ndarray:
    """Gold label names -> indices into the label list (-1 where missing or not in it)."""
    index = {n: i for i, n in enumerate(labels)}
    return np.array([index.get(n, -1) if n is not None else -1 for n in names], dtype=np.int64)


def accuracy_table(
    scores: ZeroShotScores,
    gold_verbs: Sequence[str | None],
    gold_nouns: Sequence[str | None],
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Top-k accuracy (percent) for verbs and nouns, over examples whose gold label is in the label set."""
    out: dict[str, float] = {}
    for kind, matrix, gold, labels in (
        ("verb", scores.verb_scores, gold_verbs, scores.verbs),
        ("noun", scores.noun_scores, gold_nouns, scores.nouns),
    ):
        idx = label_indices(gold, labels.names)
        keep = idx >= 0
        if not keep.any():
            raise VbertError(f"no example has a {kind} in the label set")
        for k in ks:
            out[f"{kind} top-{k}"] = 100.0 * top_k_accuracy(matrix[keep], idx[keep], k)
    return out
