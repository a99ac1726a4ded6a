"""The paper's Table 3: captioning from three inputs, on ground-truth segments.

    clip features             one input vector per clip of the segment          [n_clips, D]
    VideoBERT                 template + visual words -> mean at video tokens ++ mean at slots  [1, 2H]
    VideoBERT + clip features the VideoBERT vector ++ the mean clip feature      [1, 2H + D]

The same encoder-decoder (`vbert.tasks.captioning`), trained the same way on the training
segments, captions the validation segments; BLEU-3/4, METEOR, ROUGE-L and CIDEr as the paper
reports them (percent, CIDEr as is). With `captioner_dir`, the captioner of the "VideoBERT + clip
features" row is kept there (`vbert.tasks.captioner_file`), for `vbert describe`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vbert.bert.model import BertConfig
from vbert.config import Config
from vbert.features.store import FeatureStore
from vbert.tasks.artifacts import Artifacts
from vbert.tasks.caption_metrics import caption_scores_many, require_scorers
from vbert.tasks.captioner_file import KEPT_INPUT, save_captioner
from vbert.tasks.captioning import (
    CaptionModel,
    CaptionVocab,
    beam_search,
    greedy_decode,
    pad_inputs,
    train_captioner,
)
from vbert.tasks.data import EvalSegment, load_segments, segment_features
from vbert.tasks.embeddings import CAPTION_TEMPLATE, caption_features

INPUTS = ("clip features", "VideoBERT", "VideoBERT + clip features")


def caption_inputs(
    kind: str, clip_features: Sequence[np.ndarray], videobert: np.ndarray | None
) -> list[np.ndarray]:
    """The encoder input sequences of one kind (see the module docstring)."""
    if kind == "clip features":
        return [np.asarray(f, np.float32) for f in clip_features]
    if videobert is None:
        raise ValueError(f"input '{kind}' needs VideoBERT features")
    if kind == "VideoBERT":
        return [v[None].astype(np.float32) for v in videobert]
    if kind == "VideoBERT + clip features":
        return [
            np.concatenate([v, f.mean(0)])[None].astype(np.float32) for v, f in zip(videobert, clip_features)
        ]
    raise ValueError(f"unknown captioning input {kind!r}; choose from {', '.join(INPUTS)}")


def caption_model_config(config: Config, vocab_size: int) -> BertConfig:
    """The captioner's sizes: the preset's encoder width and depth, heads and FFN."""
    return BertConfig.from_model_config(config.model, vocab_size)


def train_and_decode(
    config: Config,
    kind: str,
    train_inputs: list[np.ndarray],
    train_segments: Sequence[EvalSegment],
    val_inputs: list[np.ndarray],
    device: str = "cpu",
    beam: bool = False,
    save_to: str | Path | None = None,
) -> dict[str, Any]:
    """Train one captioner and caption the validation inputs (greedy; also beam when `beam`), unscored.

    Returns {"input", "captions", "loss"} and, with `beam`, "beam_captions"; with `save_to`, the trained
    captioner is written there and "files" maps its files to their SHA-256.
    """
    ecfg = config.eval
    torch.manual_seed(config.seed)
    vocab = CaptionVocab.build([r for s in train_segments for r in s.references], ecfg.caption_min_count)
    model = CaptionModel(train_inputs[0].shape[1], len(vocab), caption_model_config(config, len(vocab)))
    # one training example per reference caption: the same input, each annotator's words
    inputs = [x for x, s in zip(train_inputs, train_segments) for _ in s.references]
    captions = [vocab.encode(r, ecfg.caption_max_len + 2) for s in train_segments for r in s.references]
    history = train_captioner(
        model,
        inputs,
        captions,
        epochs=ecfg.caption_epochs,
        batch_size=ecfg.caption_batch_size,
        lr=ecfg.caption_lr,
        seed=config.seed,
        device=device,
    )
    files = (
        save_captioner(model, vocab, save_to, kind, ecfg.caption_max_len, CAPTION_TEMPLATE)
        if save_to is not None
        else None
    )
    decoded: dict[str, list[str]] = {"greedy": [], "beam": []}
    for start in range(0, len(val_inputs), 64):
        x, mask = pad_inputs(val_inputs[start : start + 64])
        x, mask = x.to(device), mask.to(device)
        decoded["greedy"] += [vocab.decode(r) for r in greedy_decode(model, x, mask, ecfg.caption_max_len)]
        if beam:
            decoded["beam"] += [
                vocab.decode(r)
                for r in beam_search(model, x, mask, ecfg.caption_beam_size, ecfg.caption_max_len)
            ]
    out: dict[str, Any] = {"input": kind, "captions": decoded["greedy"], "loss": history}
    if beam:
        out["beam_captions"] = decoded["beam"]
    if files is not None:
        out["files"] = files
    return out


def score_rows(rows: list[dict[str, Any]], val_segments: Sequence[EvalSegment]) -> list[dict[str, Any]]:
    """Add "scores" (and "beam_scores") to decoded rows: every system in one METEOR (Java) process."""
    references = {str(i): list(s.references) for i, s in enumerate(val_segments)}
    systems = [(row, key) for row in rows for key in ("captions", "beam_captions") if key in row]
    scores = caption_scores_many(
        references, [{str(i): c for i, c in enumerate(row[key])} for row, key in systems]
    )
    for (row, key), score in zip(systems, scores):
        row["scores" if key == "captions" else "beam_scores"] = score
    return rows


def run_captioning(
    config: Config,
    kind: str,
    train_inputs: list[np.ndarray],
    train_segments: Sequence[EvalSegment],
    val_inputs: list[np.ndarray],
    val_segments: Sequence[EvalSegment],
    device: str = "cpu",
    beam: bool = False,
) -> dict[str, Any]:
    """Train one captioner, caption the validation segments (greedy; also beam when `beam`), score.

    Returns {"input", "scores", "captions", "loss"} and, with `beam`, "beam_scores" and "beam_captions".
    """
    row = train_and_decode(config, kind, train_inputs, train_segments, val_inputs, device, beam)
    return score_rows([row], val_segments)[0]


def caption_table(
    config: Config,
    device: str = "cpu",
    kinds: Sequence[str] = INPUTS,
    beam: bool = False,
    artifacts: Any = None,
    captioner_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Table 3 on the config's data (`artifacts`: cache or run folder): one row per input kind.

    With `captioner_dir`, the "VideoBERT + clip features" captioner is kept there and "captioner" maps
    its files to their SHA-256.
    """
    require_scorers()  # before minutes of training, not after

    artifacts = artifacts or Artifacts(config)
    tokens = artifacts.tokens()
    train = load_segments(tokens, ("training",))
    val = load_segments(tokens, ("validation",))
    store = FeatureStore(artifacts.features())
    clips = {"training": segment_features(store, train), "validation": segment_features(store, val)}
    videobert: dict[str, np.ndarray | None] = {"training": None, "validation": None}
    if any(k != "clip features" for k in kinds):
        model, vocab, tokenizer = artifacts.load_videobert(device)
        max_len = config.pretrain.max_seq_len
        videobert = {
            subset: caption_features(
                model,
                tokenizer,
                vocab,
                [s.video_words for s in segments],
                max_len=max_len,
                context=[(s.before, s.after) for s in segments] if config.eval.caption_context else None,
            )
            for subset, segments in (("training", train), ("validation", val))
        }
    rows = [
        train_and_decode(
            config,
            kind,
            caption_inputs(kind, clips["training"], videobert["training"]),
            train,
            caption_inputs(kind, clips["validation"], videobert["validation"]),
            device,
            beam,
            captioner_dir if kind == KEPT_INPUT else None,
        )
        for kind in kinds
    ]
    kept = {name: sha for row in rows for name, sha in row.pop("files", {}).items()}
    score_rows(rows, val)  # one Java start for METEOR instead of one per row
    return {
        **({"captioner": kept} if kept else {}),
        "rows": rows,
        "references": [list(s.references) for s in val],
        "num_train": len(train),
        "num_val": len(val),
    }


def keep_captioner(
    config: Config, folder: str | Path, device: str = "cpu", artifacts: Any = None
) -> dict[str, str]:
    """Train only the captioner Table 3 keeps ("VideoBERT + clip features") and write it into `folder`.

    The same training as its row of `caption_table` (same data, seed and settings), without decoding
    or scoring; returns its files' SHA-256 (keyed "captioner/<file>").
    """
    artifacts = artifacts or Artifacts(config)
    train = load_segments(artifacts.tokens(), ("training",))
    clips = segment_features(FeatureStore(artifacts.features()), train)
    model, vocab, tokenizer = artifacts.load_videobert(device)
    words = [s.video_words for s in train]
    context = [(s.before, s.after) for s in train] if config.eval.caption_context else None
    videobert = caption_features(
        model, tokenizer, vocab, words, max_len=config.pretrain.max_seq_len, context=context
    )
    inputs = caption_inputs(KEPT_INPUT, clips, videobert)
    return train_and_decode(config, KEPT_INPUT, inputs, train, [], device, save_to=folder)["files"]
