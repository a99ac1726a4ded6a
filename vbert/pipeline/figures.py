"""The course's map: the VideoBERT pipeline as a strip of boxes, the current lesson's boxes highlighted.

Every notebook opens with it (`pipeline_strip("05")`), so a student sees where the lesson sits:
what comes in from the lessons before and what goes out to the ones after.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch


@dataclass(frozen=True)
class StripStage:
    """One box of the strip: what it does, the package folder that does it, the lessons that teach it."""

    title: str
    module: str
    lessons: tuple[str, ...]


COURSE_STAGES = (
    StripStage("videos\n+ narration", "vbert.data", ("03a",)),
    StripStage("decode 20 fps,\n1.5 s clips", "vbert.data", ("03a",)),
    StripStage("clip features\n1024-d (S3D)", "vbert.features", ("03b",)),
    StripStage("visual words\nk-means", "vbert.visual_words", ("04",)),
    StripStage("joint sequences\n[CLS] text\n[>] video", "vbert.pretraining", ("05",)),
    StripStage("BERT encoder\nMLM + alignment", "vbert.bert", ("01", "02", "05")),
    StripStage("tasks: zero-shot,\ncaptions, retrieval", "vbert.tasks", ("06", "07", "08")),
)
LESSONS = ("00", "01", "02", "03a", "03b", "04", "05", "06", "07", "08")
HIGHLIGHT = ("#fde2c8", "#c2571a")  # fill, edge of the current lesson's boxes
PLAIN = ("#e8f0fe", "#3466c2")


def pipeline_strip(lesson: str | None = None, ax: Axes | None = None) -> Figure:
    """Draw the pipeline strip; the boxes that lesson `lesson` teaches (e.g. "05") are highlighted."""
    if lesson is not None and lesson not in LESSONS:
        raise ValueError(f"no lesson {lesson!r}; the lessons are {', '.join(LESSONS)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(14, 2.6))
    width, step = 1.75, 2.05
    for i, stage in enumerate(COURSE_STAGES):
        x = i * step
        fill, edge = HIGHLIGHT if lesson in stage.lessons else PLAIN
        ax.add_patch(
            FancyBboxPatch(
                (x, 0), width, 1.0, boxstyle="round,pad=0.05", fc=fill, ec=edge, lw=1.5, gid=stage.title
            )
        )
        ax.text(x + width / 2, 0.6, stage.title, ha="center", va="center", fontsize=8.5)
        ax.text(
            x + width / 2,
            0.15,
            stage.module,
            ha="center",
            va="center",
            fontsize=7.5,
            family="monospace",
            color=edge,
        )
        ax.text(
            x + width / 2, -0.22, "lesson " + ", ".join(stage.lessons), ha="center", fontsize=8, color="gray"
        )
        if i < len(COURSE_STAGES) - 1:
            ax.annotate(
                "", xy=(x + step - 0.02, 0.5), xytext=(x + width + 0.05, 0.5), arrowprops={"arrowstyle": "->"}
            )
    ax.set_xlim(-0.1, len(COURSE_STAGES) * step)
    ax.set_ylim(-0.4, 1.15)
    ax.axis("off")
    where = "the whole pipeline" if lesson is None else f"lesson {lesson}: the highlighted stages"
    ax.set_title(f"VideoBERT in vbert, one package folder per stage ({where})")
    return ax.figure
