"""vbert.data.video: timestamp resampling, clip cutting, resize/crop, and bad files named in errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vbert.data.video import (
    VideoClips,
    probe,
    read_clips,
    read_clips_batch,
    read_frames,
    resize_and_crop,
    write_video,
)
from vbert.errors import DataError

CELLS = 6  # a 6x6 grid of cells; frame i lights cell i % 36, so a decoded frame tells its index


def _counter_video(path, num_frames: int, fps: float, width: int = 64, height: int = 48):
    """A video whose frame i lights one grid cell (i % 36) white on black."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    ch, cw = height // CELLS, width // CELLS
    for i in range(num_frames):
        row, col = divmod(i % (CELLS * CELLS), CELLS)
        frames[i, row * ch : (row + 1) * ch, col * cw : (col + 1) * cw] = 255
    return write_video(path, frames, fps)


def _lit_cell(frame: np.ndarray) -> int:
    """Which grid cell of a decoded frame is brightest."""
    height, width = frame.shape[:2]
    ch, cw = height // CELLS, width // CELLS
    means = [
        frame[r * ch : (r + 1) * ch, c * cw : (c + 1) * cw].mean() for r in range(CELLS) for c in range(CELLS)
    ]
    return int(np.argmax(means))


@pytest.mark.parametrize(
    ("source_fps", "num_frames"),
    [(25.0, 50), (29.97, 60), (30.0, 61), (60.0, 120), (10.0, 20)],
)
def test_resampling_by_timestamps(tmp_path, source_fps, num_frames):
    path = _counter_video(tmp_path / "v.mp4", num_frames, source_fps)
    frames, times = read_frames(path, fps=20.0)
    duration = num_frames / source_fps
    # every target time k/20 inside [0, duration) gets exactly one frame
    assert len(frames) == math.ceil(duration * 20.0 - 1e-9)
    np.testing.assert_allclose(times, np.arange(len(frames)) / 20.0)
    # frame k shows the source frame on screen at time k/20 (the lit cell encodes the index)
    shown = [_lit_cell(f) for f in frames]
    expected = [math.floor(t * source_fps + 1e-6) % (CELLS * CELLS) for t in times]
    assert shown == expected


@pytest.mark.parametrize(
    ("source_fps", "num_frames", "width", "height", "clips"),
    [(30.0, 150, 80, 60, 3), (25.0, 100, 60, 90, 2), (60.0, 200, 96, 96, 2), (29.97, 91, 64, 48, 2)],
)
def test_clip_counts_times_and_sizes(tmp_path, source_fps, num_frames, width, height, clips):
    path = _counter_video(tmp_path / "v.mp4", num_frames, source_fps, width, height)
    out = read_clips(path, fps=20.0, clip_frames=30, size=32)
    assert isinstance(out, VideoClips)
    assert out.frames.shape == (clips, 30, 32, 32, 3) and out.frames.dtype == np.uint8
    np.testing.assert_allclose(out.starts, np.arange(clips) * 1.5)
    np.testing.assert_allclose(out.ends, out.starts + 1.5)
    assert out.source_fps == pytest.approx(source_fps, rel=1e-3)
    assert len(out) == clips


def test_clip_length_and_rate_are_arguments(tmp_path):
    path = _counter_video(tmp_path / "v.mp4", 90, 30.0)  # 3 s
    out = read_clips(path, fps=10.0, clip_frames=8, size=16)
    assert out.frames.shape == (3, 8, 16, 16, 3)  # 30 frames at 10 fps -> 3 clips of 8, 6 dropped
    np.testing.assert_allclose(out.starts, [0.0, 0.8, 1.6])


def test_resize_short_side_then_centre_crop():
    frame = np.zeros((40, 100, 3), dtype=np.uint8)
    frame[:, 45:55] = 255  # a white bar in the centre survives the crop
    out = resize_and_crop(frame, 20)
    assert out.shape == (20, 20, 3)
    assert out[:, 8:12].mean() > 200 and out[:, :3].mean() < 30


def test_write_reads_back_rgb(tmp_path):
    frames = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    frames[..., 0] = 200  # pure-ish red: checks the RGB <-> BGR round trip
    path = write_video(tmp_path / "red.mp4", frames, 20.0)
    info = probe(path)
    assert (info.frame_count, info.width, info.height) == (5, 32, 32)
    decoded, _ = read_frames(path, fps=20.0)
    assert decoded[..., 0].mean() > 150 and decoded[..., 2].mean() < 60


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.mp4: video file not found"):
        read_clips(tmp_path / "nope.mp4")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.mp4: video file is empty"):
        read_frames(path)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20, encoding="utf-8")
    with pytest.raises(DataError, match=r"notes\.mp4: not a video"):
        read_clips(path)


def test_truncated_video(tmp_path):
    path = _counter_video(tmp_path / "full.mp4", 60, 30.0)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.mp4: .*truncated"):
        read_clips(cut)


def test_video_shorter_than_one_clip(tmp_path):
    path = _counter_video(tmp_path / "short.mp4", 30, 30.0)  # 1 s < 1.5 s
    with pytest.raises(DataError, match=r"short\.mp4: video too short"):
        read_clips(path, fps=20.0, clip_frames=30)


def test_write_refuses_bad_frames(tmp_path):
    with pytest.raises(DataError, match="expected uint8 frames"):
        write_video(tmp_path / "x.mp4", np.zeros((3, 8, 8), dtype=np.uint8), 20.0)


def test_batch_records_each_bad_file_and_reads_the_rest(tmp_path):
    good = _counter_video(tmp_path / "good.mp4", 60, 30.0)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("not a video", encoding="utf-8")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[:300])
    short = _counter_video(tmp_path / "short.mp4", 20, 30.0)
    paths = [tmp_path / "missing.mp4", empty, text, good, cut, short]
    clips, failures = read_clips_batch(paths, fps=20.0, clip_frames=30, size=16)
    assert [c.path.name for c in clips] == ["good.mp4"] and len(clips[0]) == 1
    reasons = {Path(f.item).name: f.reason for f in failures}
    assert list(reasons) == ["missing.mp4", "empty.mp4", "text.mp4", "cut.mp4", "short.mp4"]
    assert "not found" in reasons["missing.mp4"] and "empty" in reasons["empty.mp4"]
    assert "not a video" in reasons["text.mp4"] and "truncated" in reasons["cut.mp4"]
    assert "too short" in reasons["short.mp4"]
