"""Video decoding with OpenCV: resample to a target rate by timestamps, cut clips, resize and crop.

The paper samples every video at 20 fps and cuts non-overlapping 30-frame (1.5 s) clips, each
of which becomes one visual word. Source videos come at any rate (25, 29.97, 30, 60 fps), so
resampling is done by time, not by frame index: target frame k shows the source frame on
screen at time k / fps. Each clip keeps its start and end time so it can be aligned with the
narration. Every problem with a file is a `DataError` that names the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vbert.data.dataset import Failure
from vbert.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


@dataclass
class VideoClips:
    """The clips of one video: frames, and the time span each clip covers."""

    path: Path
    frames: np.ndarray  # uint8 [num_clips, clip_frames, size, size, 3] RGB
    starts: np.ndarray  # float64 [num_clips] seconds
    ends: np.ndarray  # float64 [num_clips] seconds
    source_fps: float

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class VideoInfo:
    """What the container says about a video (frame count may be an estimate)."""

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Length in seconds, from the container's frame count and rate."""
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def _open(path: str | Path) -> tuple[Path, cv2.VideoCapture]:
    """Open a video for reading, refusing missing, empty and unreadable files by name."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: video file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: video file is empty (0 bytes)")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        with open(path, "rb") as handle:
            head = handle.read(12)
        if head[4:8] == b"ftyp":
            raise DataError(
                f"{path}: an MP4 file that cannot be opened: truncated or corrupt (no usable index)"
            )
        raise DataError(
            f"{path}: not a video OpenCV can read (wrong format, e.g. a text file named like a video)"
        )
    return path, capture


def probe(path: str | Path) -> VideoInfo:
    """Read a video's rate, frame count and size without decoding it."""
    path, capture = _open(path)
    try:
        return VideoInfo(
            path=path,
            fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
            frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        capture.release()


def resize_and_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize so the short side is `size`, then centre-crop to `size` x `size`."""
    height, width = frame.shape[:2]  # frame: [H, W, 3]
    scale = size / min(height, width)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_w, new_h) != (width, height):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (new_w, new_h), interpolation=interp)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return frame[top : top + size, left : left + size]  # [size, size, 3]


def iter_frames(
    path: str | Path, fps: float = 20.0, size: int | None = None
) -> Iterator[tuple[np.ndarray, float]]:
    """Yield (RGB frame uint8 [H, W, 3], time in seconds) resampled to `fps` by timestamps.

    Source frame i is on screen during [i / source_fps, (i + 1) / source_fps); target frame k
    at time k / fps shows the source frame on screen then. Frames that no target time needs
    are skipped without being decoded (`grab` only). With `size`, frames are resized (short
    side) and centre-cropped to `size` x `size`.
    """
    if fps <= 0:
        raise DataError(f"{path}: target frame rate must be positive, got {fps}")
    path, capture = _open(path)
    try:
        source_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(source_fps) or source_fps <= 0:
            raise DataError(f"{path}: the container gives no usable frame rate ({source_fps})")
        expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        source_index, target_index, decoded = 0, 0, 0
        while True:
            wanted = math.floor(target_index * source_fps / fps + 1e-6)  # source frame at time k / fps
            if not capture.grab():
                break
            decoded += 1
            if source_index == wanted:
                ok, bgr = capture.retrieve()
                if not ok or bgr is None:
                    raise DataError(f"{path}: frame {source_index} cannot be decoded (corrupt video?)")
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                if size is not None:
                    rgb = resize_and_crop(rgb, size)
                # one source frame may serve several target times (upsampling)
                while math.floor(target_index * source_fps / fps + 1e-6) == source_index:
                    yield rgb, target_index / fps
                    target_index += 1
            source_index += 1
        if decoded == 0:
            raise DataError(f"{path}: no frame could be decoded (corrupt or truncated video)")
        if expected > 0 and decoded < expected - max(2, int(0.02 * expected)):
            raise DataError(
                f"{path}: truncated video: decoded {decoded} of the {expected} frames its header announces"
            )
    finally:
        capture.release()


def read_frames(
    path: str | Path, fps: float = 20.0, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a whole video at `fps`: (frames uint8 [T, H, W, 3] RGB, times float64 [T] seconds)."""
    frames, times = [], []
    for frame, time in iter_frames(path, fps=fps, size=size):
        frames.append(frame)
        times.append(time)
    return np.stack(frames), np.asarray(times, dtype=np.float64)


def read_clips(path: str | Path, fps: float = 20.0, clip_frames: int = 30, size: int = 112) -> VideoClips:
    """Cut a video into non-overlapping clips of `clip_frames` frames at `fps` (a trailing part is dropped).

    A video shorter than one clip is a DataError. Clip i covers
    [starts[i], ends[i]) = [i * clip_frames / fps, (i + 1) * clip_frames / fps).
    """
    if clip_frames <= 0:
        raise DataError(f"{path}: clip length must be positive, got {clip_frames} frames")
    info = probe(path)
    frames, times = read_frames(path, fps=fps, size=size)  # [T, size, size, 3], [T]
    num_clips = len(frames) // clip_frames
    if num_clips == 0:
        seconds = len(frames) / fps
        raise DataError(
            f"{path}: video too short: {seconds:.2f} s gives {len(frames)} frames at {fps:g} fps, "
            f"fewer than one clip of {clip_frames} frames ({clip_frames / fps:.2f} s)"
        )
    used = frames[: num_clips * clip_frames]
    clips = used.reshape(num_clips, clip_frames, *frames.shape[1:])  # [N, clip_frames, size, size, 3]
    starts = times[: num_clips * clip_frames : clip_frames].copy()  # [N]
    ends = starts + clip_frames / fps  # [N]
    return VideoClips(path=info.path, frames=clips, starts=starts, ends=ends, source_fps=info.fps)


def read_clips_batch(
    paths: list[str | Path], fps: float = 20.0, clip_frames: int = 30, size: int = 112
) -> tuple[list[VideoClips], list[Failure]]:
    """Read many videos; one that cannot be used becomes a Failure (file and reason) and the rest go on."""
    done, failures = [], []
    for path in paths:
        try:
            done.append(read_clips(path, fps=fps, clip_frames=clip_frames, size=size))
        except DataError as err:
            failures.append(Failure(str(path), str(err)))
    return done, failures


def write_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write RGB frames uint8 [T, H, W, 3] as an .mp4 (fourcc 'mp4v') and check it reads back."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise DataError(
            f"{path}: expected uint8 frames [T, H, W, 3] with T > 0, got {frames.dtype} {frames.shape}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot write mp4v video here (is FFMPEG support missing?)")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    info = probe(path)
    if info.frame_count != len(frames) or (info.width, info.height) != (width, height):
        raise DataError(
            f"{path}: wrote {len(frames)} frames of {width}x{height} but read back "
            f"{info.frame_count} of {info.width}x{info.height}"
        )
    return path
