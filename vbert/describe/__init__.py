"""Use a finished run on your own videos: describe them, find videos like them, rank for a watch history.

    from vbert.describe import describe
    result = describe(["my_video.mp4"], run="runs/demo", out="described", sentences=["slice the bread"])
    result = describe("my_video.mp4", run=load_config("tiny"))  # a config: its stage cache, as notebooks use

Modules, in the order they build on each other: `run` (open and check a run folder), `words` (a
video -> clips -> features -> visual words), `similar` (VideoBERT video embeddings, nearest videos, a
watch history, same-recipe precision), `video` (one video's segments: zero-shot verbs and nouns,
caption, alignment), `storyboard`, `report` (`describe`: several videos, the files), `cli`.
"""

from vbert.describe.report import Described, describe
from vbert.describe.run import DEFAULT_RUN, FinishedRun, open_run
from vbert.describe.similar import recommend, same_recipe_precision, similar_videos
from vbert.describe.video import VideoDescription, describe_video

__all__ = [
    "DEFAULT_RUN",
    "Described",
    "FinishedRun",
    "VideoDescription",
    "describe",
    "describe_video",
    "open_run",
    "recommend",
    "same_recipe_precision",
    "similar_videos",
]
