"""The course map drawn at the top of every notebook: one box per stage, the lesson's boxes highlighted."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import FancyBboxPatch

from vbert.pipeline.figures import COURSE_STAGES, HIGHLIGHT, LESSONS, PLAIN, pipeline_strip


def _boxes(figure) -> dict[str, str]:
    """Each stage box's title and fill colour, in drawing order."""
    ax = figure.axes[0]
    return {p.get_gid(): to_hex(p.get_facecolor()) for p in ax.patches if isinstance(p, FancyBboxPatch)}


def test_the_lesson_s_stages_are_highlighted_and_the_others_plain() -> None:
    boxes = _boxes(pipeline_strip("05"))
    assert list(boxes) == [stage.title for stage in COURSE_STAGES]
    highlighted = [title for title, fill in boxes.items() if fill == HIGHLIGHT[0]]
    assert highlighted == ["joint sequences\n[CLS] text\n[>] video", "BERT encoder\nMLM + alignment"]
    assert all(fill == PLAIN[0] for title, fill in boxes.items() if title not in highlighted)
    plt.close("all")


def test_every_stage_is_taught_by_a_lesson_and_the_introduction_highlights_none() -> None:
    taught = {lesson for stage in COURSE_STAGES for lesson in stage.lessons}
    assert taught == set(LESSONS) - {"00"}
    assert set(_boxes(pipeline_strip("00")).values()) == {PLAIN[0]}
    plt.close("all")


def test_an_unknown_lesson_is_refused_with_the_list() -> None:
    with pytest.raises(ValueError, match="no lesson '3'.*03a, 03b"):
        pipeline_strip("3")
