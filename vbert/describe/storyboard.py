"""The storyboard of a described video: a frame per clip with its visual word, a row per segment.

Each row is one segment: its time span, the top zero-shot verb and noun and its caption above, then
the middle frame of each of its clips (as the model saw it: at the run's crop size) with the clip's
visual word (`[V17]`, the name the Hugging Face export gives it) below. Drawn on a matplotlib
`Figure` without pyplot, rendered by Agg into the file: no screen and no global figure state.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from vbert.describe.video import SegmentDescription, VideoDescription
from vbert.pretraining.joint_vocab import visual_token

TILE = 0.9  # inches: a clip's frame
GAP = 0.06  # between frames
HEAD = 0.45  # the file name at the top
ROW_TITLE = 0.28  # a segment's line above its frames
LABEL = 0.22  # a frame's word below it
MARGIN = 0.12


def segment_title(segment: SegmentDescription) -> str:
    """One line for a segment: time span, top verb and noun, caption."""
    caption = f'"{segment.caption}"' if segment.caption is not None else "(no captioner)"
    verb = segment.verbs[0][0] if segment.verbs else "?"
    noun = segment.nouns[0][0] if segment.nouns else "?"
    return f"{segment.start:.1f}-{segment.end:.1f} s   {verb} the {noun}   {caption}"


def storyboard(description: VideoDescription, path: str | Path, title: str | None = None) -> Path:
    """Draw the storyboard of `description` into the PNG file `path`."""
    path = Path(path)
    segments = description.segments
    thumbnails = description.video.thumbnails  # [n, S, S, 3]
    cols = max(len(s.words) for s in segments)
    row = ROW_TITLE + TILE + LABEL
    width = max(6.0, 2 * MARGIN + cols * (TILE + GAP))
    height = HEAD + len(segments) * row + MARGIN
    fig = Figure(figsize=(width, height))
    fig.text(
        MARGIN / width, 1 - 0.3 / height, title or description.video.path.name, fontsize=11, va="baseline"
    )
    first = 0
    for r, segment in enumerate(segments):
        top = HEAD + r * row  # inches from the top of the figure
        fig.text(MARGIN / width, 1 - (top + 0.2) / height, segment_title(segment), fontsize=8, va="baseline")
        for c, word in enumerate(segment.words):
            left, bottom = MARGIN + c * (TILE + GAP), height - (top + ROW_TITLE + TILE)
            ax = fig.add_axes((left / width, bottom / height, TILE / width, TILE / height))
            ax.set_axis_off()
            ax.imshow(thumbnails[first + c])
            fig.text(
                (left + TILE / 2) / width,
                (bottom - 0.14) / height,
                visual_token(word),
                fontsize=6,
                ha="center",
            )
        first += len(segment.words)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
