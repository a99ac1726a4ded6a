"""Figures of pretraining inputs: one VideoBERT sequence drawn as a row of token boxes.

    [CLS] text WordPieces [>] visual words [SEP]

Each token is a box coloured by what it is (text, visual word, special, `[MASK]`), with its token
type (segment id) below it; a position the model must predict has a red outline and, above it, the
token it hides. Drawn on a matplotlib `Axes` the caller owns, so that a notebook can stack the
regimes of a batch in one figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from vbert.pretraining.joint_vocab import JointVocab

KIND_COLOURS = {"text": "#dbeafe", "video": "#fde68a", "special": "#e5e7eb", "mask": "#fca5a5"}
PREDICTED_EDGE = "#dc2626"  # outline of a position the model must predict
BOX_WIDTH = 0.92  # of one token's unit of width (the rest is the gap)
BOX_HEIGHT = 2.0  # tall enough for a word written upwards
ROW_PITCH = 4.5  # vertical distance between stacked sequences, room for the hidden tokens above


def token_kind(token_id: int, vocab: JointVocab) -> str:
    """'mask', 'special' ([CLS], [SEP], [>], [PAD]), 'video' (a visual word) or 'text'."""
    if token_id == vocab.mask_id:
        return "mask"
    if token_id in (vocab.cls_id, vocab.sep_id, vocab.next_id, vocab.pad_id):
        return "special"
    return "video" if vocab.text_size <= token_id < vocab.next_id else "text"


def plot_sequence(
    ax: Axes,
    input_ids: Sequence[int] | np.ndarray | torch.Tensor,
    token_type_ids: Sequence[int] | np.ndarray | torch.Tensor,
    vocab: JointVocab,
    token_name: Callable[[int], str],
    targets: Mapping[int, int] | None = None,
    y: float = 0.0,
    label: str = "",
) -> list[Rectangle]:
    """Draw one sequence ([L] ids, padding skipped) as a row of boxes at height `y`; returns the boxes."""
    targets = targets or {}  # position -> original id, for the positions the model must predict
    ids = [int(i) for i in input_ids]  # [L]
    types = [int(t) for t in token_type_ids]  # [L]
    boxes = []
    for position, (token_id, token_type) in enumerate(zip(ids, types)):
        if token_id == vocab.pad_id:
            continue
        predicted = position in targets
        box = Rectangle(
            (position - BOX_WIDTH / 2, y - BOX_HEIGHT / 2),
            BOX_WIDTH,
            BOX_HEIGHT,
            facecolor=KIND_COLOURS[token_kind(token_id, vocab)],
            edgecolor=PREDICTED_EDGE if predicted else "#9ca3af",
            linewidth=2.0 if predicted else 0.6,
            label=token_name(token_id),
        )
        ax.add_patch(box)
        boxes.append(box)
        name = token_name(token_id)
        size = 6.5 if len(name) <= 7 else max(4.5, 6.5 * 7 / len(name))  # long WordPieces in smaller type
        ax.text(position, y, name, ha="center", va="center", fontsize=size, rotation=90)
        ax.text(position, y - BOX_HEIGHT / 2 - 0.15, str(token_type), ha="center", va="top", fontsize=6)
        if predicted:
            ax.text(
                position,
                y + BOX_HEIGHT / 2 + 0.1,
                token_name(targets[position]),
                ha="left",  # with rotation_mode "anchor": starts at the box's top centre and runs upwards
                va="center",
                fontsize=6,
                rotation=90,
                rotation_mode="anchor",
                color=PREDICTED_EDGE,
            )
    if label:
        ax.text(-1.0, y, label, ha="right", va="center", fontsize=8)
    right = max((box.get_x() + box.get_width() for box in boxes), default=1.0)
    ax.set_xlim(min(ax.get_xlim()[0], -1.0), max(ax.get_xlim()[1], right + 0.5))
    ax.set_ylim(
        min(ax.get_ylim()[0], y - BOX_HEIGHT / 2 - 0.8), max(ax.get_ylim()[1], y + BOX_HEIGHT / 2 + 1.6)
    )
    ax.set_axis_off()
    return boxes
