"""`describe`: several videos in one call, and the files it writes.

- `describe.json`: the run, its settings, every video (clips, words, segments with verbs, nouns,
  caption and alignment, similar videos, timings) and the paths that could not be described, with
  the reason;
- `describe.md`: the same as tables;
- `storyboard-<video file stem>.png`: one per video (`vbert.describe.storyboard`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vbert.config import Config
from vbert.core.manifest import atomic_write_bytes, atomic_write_json
from vbert.describe.run import DEFAULT_RUN, FinishedRun, as_run
from vbert.describe.storyboard import segment_title, storyboard
from vbert.describe.video import VideoDescription, describe_video
from vbert.errors import VbertError
from vbert.pretraining.joint_vocab import visual_token

JSON_FILE, MARKDOWN_FILE = "describe.json", "describe.md"


@dataclass
class Described:
    """What `describe` did: the videos described, the paths it could not (path, reason), the files written."""

    run: FinishedRun
    videos: list[VideoDescription]
    failures: list[tuple[str, str]]
    sentences: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def describe(
    paths: str | Path | Sequence[str | Path],
    run: FinishedRun | Config | str | Path = DEFAULT_RUN,
    out: str | Path | None = None,
    sentences: Sequence[str] = (),
    similar: int = 0,
    segment_words: int | None = None,
    device: str = "cpu",
) -> Described:
    """Describe video files with a finished run; with `out`, write describe.json, describe.md and storyboards.

    `run`: a `vbert run` folder (default `runs/demo`), a `Config` (its stage cache, as the notebooks
    use), or a run already opened with `open_run`.
    A path that cannot be described (missing, a folder, empty, not a video, truncated, shorter than
    one clip) is listed in `failures` with the reason, and the others are still described.
    """
    if segment_words is not None and segment_words < 1:
        raise VbertError(f"a segment needs at least one clip, got {segment_words}")
    if similar < 0:
        raise VbertError(f"the number of similar videos cannot be negative, got {similar}")
    finished = as_run(run, device)
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    videos, failures = [], []
    for path in paths:
        try:
            videos.append(describe_video(path, finished, sentences, similar, segment_words))
        except VbertError as err:
            failures.append((str(path), str(err)))
    result = Described(finished, videos, failures, list(sentences))
    if out is not None:
        result.files = write_outputs(result, Path(out))
    return result


def storyboard_names(videos: Sequence[VideoDescription]) -> list[str]:
    """A storyboard file name per video, from its file's stem (numbered when two stems are the same)."""
    names, used = [], set()
    for video in videos:
        name, n = f"storyboard-{video.video.path.stem}.png", 2
        while name in used:
            name, n = f"storyboard-{video.video.path.stem}-{n}.png", n + 1
        used.add(name)
        names.append(name)
    return names


def _run_summary(run: FinishedRun) -> dict[str, Any]:
    config = run.config
    return {
        "run": run.name,
        "preset": config.name,
        "fps": config.video.fps,
        "clip_frames": config.video.clip_frames,
        "clip_seconds": config.video.clip_frames / config.video.fps,
        "extractor": config.features.extractor,
        "visual_words": run.vocab.visual_size,
        "segment_clips": config.vocab.words_per_segment,
        "zero_shot_template": config.eval.zero_shot_template,
        "verbs": run.verbs.names,
        "nouns": run.nouns.names,
        "captioner": run.captioner.input if run.captioner is not None else None,
        "caption_missing": run.captioner_missing,
        "alignment_trained": run.alignment_trained,
    }


def video_record(description: VideoDescription, storyboard_file: str | None = None) -> dict[str, Any]:
    """The JSON record of one described video."""
    video, info = description.video, description.video.info
    return {
        "path": str(video.path),
        "source_fps": round(info.fps, 3),
        "width": info.width,
        "height": info.height,
        "clips": len(video.words),
        "words": video.words,
        "clip_starts": [round(float(s), 3) for s in video.starts],
        "clip_ends": [round(float(e), 3) for e in video.ends],
        "segments": [
            {
                "index": s.index,
                "start": s.start,
                "end": s.end,
                "words": s.words,
                "verbs": [{"label": label, "log_prob": score} for label, score in s.verbs],
                "nouns": [{"label": label, "log_prob": score} for label, score in s.nouns],
                "caption": s.caption,
                "alignment": [{"sentence": t, "probability": p} for t, p in s.alignment],
            }
            for s in description.segments
        ],
        "similar": description.similar,
        "storyboard": storyboard_file,
        "seconds": description.seconds,
    }


def _markdown(result: Described, names: list[str]) -> str:
    run, lines = result.run, ["# vbert describe", ""]
    summary = _run_summary(run)
    lines.append(
        f"Run: {summary['run']} (preset {summary['preset']}): {summary['fps']:g} fps, clips of "
        f"{summary['clip_frames']} frames ({summary['clip_seconds']:g} s), {summary['extractor']} features, "
        f"{summary['visual_words']} visual words; segments of {summary['segment_clips']} clips. Zero-shot "
        f'template "{summary["zero_shot_template"]}" over {len(run.verbs.names)} verbs and '
        f"{len(run.nouns.names)} nouns."
    )
    lines.append(
        f'Captions: the captioner of Table 3\'s "{summary["captioner"]}" row.'
        if run.captioner is not None
        else f"Captions: missing. {run.captioner_missing}"
    )
    for description, name in zip(result.videos, names):
        video, info = description.video, description.video.info
        lines += [
            "",
            f"## {video.path.name}",
            "",
            f"{info.duration:.1f} s at {info.fps:.2f} fps, {info.width}x{info.height}: {len(video.words)} clips, "
            f"{len(description.segments)} segments, described in {description.seconds['total']:.1f} s.",
            "",
            f"![storyboard]({name})",
            "",
            "| segment | seconds | visual words | verb top-5 | noun top-5 | caption |",
            "|---:|---|---|---|---|---|",
        ]
        for s in description.segments:
            words = " ".join(visual_token(w) for w in s.words)
            verbs, nouns = ", ".join(v for v, _ in s.verbs), ", ".join(n for n, _ in s.nouns)
            caption = s.caption if s.caption is not None else "missing"
            lines.append(
                f"| {s.index + 1} | {s.start:.1f}-{s.end:.1f} | {words} | {verbs} | {nouns} | {caption} |"
            )
        if result.sentences:
            lines += ["", "Alignment: the probability that each sentence describes each segment"
                      + ("." if run.alignment_trained else " (this run did not train the alignment head: noise)."),
                      "", "| sentence | " + " | ".join(f"segment {s.index + 1}" for s in description.segments) + " |",
                      "|---|" + "---:|" * len(description.segments)]  # fmt: skip
            for j, sentence in enumerate(result.sentences):
                cells = " | ".join(f"{s.alignment[j][1]:.2f}" for s in description.segments)
                lines.append(f"| {sentence} | {cells} |")
        if description.similar:
            lines += ["", "Videos like this one (VideoBERT embedding, cosine):", "",
                      "| rank | video | recipe | subset | cosine |", "|---:|---|---|---|---:|"]  # fmt: skip
            for rank, v in enumerate(description.similar, 1):
                lines.append(
                    f"| {rank} | {v['video_id']} | {v['recipe_type']} | {v['subset']} | {v['similarity']:.3f} |"
                )
    if result.failures:
        lines += ["", "## Not described", ""] + [f"- {reason}" for _, reason in result.failures]
    return "\n".join(lines) + "\n"


def write_outputs(result: Described, out: Path) -> list[Path]:
    """Write describe.json, describe.md and a storyboard per video into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    names = storyboard_names(result.videos)
    files = [storyboard(v, out / name) for v, name in zip(result.videos, names)]
    atomic_write_json(
        out / JSON_FILE,
        {
            **_run_summary(result.run),
            "sentences": result.sentences,
            "videos": [video_record(v, name) for v, name in zip(result.videos, names)],
            "failures": [{"path": path, "reason": reason} for path, reason in result.failures],
        },
    )
    atomic_write_bytes(out / MARKDOWN_FILE, _markdown(result, names).encode())
    return [out / JSON_FILE, out / MARKDOWN_FILE, *files]


def print_summary(result: Described) -> None:
    """A few lines per described video on stdout (the CLI's output)."""
    for description in result.videos:
        video = description.video
        print(
            f"{video.path}: {len(video.words)} clips, {len(description.segments)} segments "
            f"({description.seconds['total']:.1f} s)"
        )
        for s in description.segments:
            print(f"  {segment_title(s)}")
        for v in description.similar:
            print(f"  like {v['video_id']} ({v['recipe_type']}, cosine {v['similarity']:.3f})")
    if result.run.captioner is None and result.videos:
        print(f"no captions: {result.run.captioner_missing}")
