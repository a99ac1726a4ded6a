"""A new video as the run saw its own: decoded at the run's rate, cut into its clips, features, visual words.

Any file OpenCV reads, at any frame rate and size: `vbert.data.video.read_clips` resamples it by
timestamps to the run's `video.fps`, cuts `video.clip_frames`-frame clips and crops them to
`video.crop_size`; the run's extractor gives each clip its 1024-d feature, stored at float16 as the
features folder stores them, and the run's vocabulary gives each its word (`vocab.assignment`), so a
video of the run's own dataset gets exactly the words its token file holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vbert.data.video import VideoInfo, probe, read_clips
from vbert.describe.run import FinishedRun
from vbert.errors import DataError
from vbert.visual_words.tokenize import assign_words


@dataclass
class VideoWords:
    """One video as visual words: its clips' times, features and words, and a frame of each clip."""

    path: Path
    info: VideoInfo
    starts: np.ndarray  # float64 [n] seconds
    ends: np.ndarray  # float64 [n] seconds
    features: np.ndarray  # float32 [n, D] (float16 precision, as the features folder stores them)
    words: list[int]  # [n] visual word of each clip
    thumbnails: np.ndarray  # uint8 [n, S, S, 3] RGB: the middle frame of each clip
    seconds: dict[str, float] = field(default_factory=dict)  # time spent decoding, extracting, assigning


def video_words(path: str | Path, run: FinishedRun) -> VideoWords:
    """Decode `path` at the run's settings and give every clip its feature and visual word.

    Anything wrong with the file is a DataError naming it: missing, a folder, empty, not a video,
    truncated, or shorter than one clip.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: a folder, not a video file (name the videos in it, e.g. {path}/*.mp4)")
    video = run.config.video
    start = time.perf_counter()
    info = probe(path)
    clips = read_clips(path, fps=video.fps, clip_frames=video.clip_frames, size=video.crop_size)
    decoded = time.perf_counter()
    features = run.extractor(clips.frames, batch_size=run.config.features.batch_size)  # [n, D]
    features = features.astype(np.float16).astype(np.float32)  # as the features folder holds them
    extracted = time.perf_counter()
    words = assign_words(run.tree, torch.from_numpy(features), run.config.vocab.assignment).tolist()  # [n]
    return VideoWords(
        path=path,
        info=info,
        starts=clips.starts,
        ends=clips.ends,
        features=features,
        words=[int(w) for w in words],
        thumbnails=np.ascontiguousarray(clips.frames[:, video.clip_frames // 2]),
        seconds={
            "decode": round(decoded - start, 3),
            "features": round(extracted - decoded, 3),
            "words": round(time.perf_counter() - extracted, 3),
        },
    )
