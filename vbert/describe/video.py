"""Describe your own videos with a finished run: words, zero-shot verbs and nouns, captions, alignment.

A video becomes visual words exactly as the run's own videos did (`vbert.describe.words`), then
segments of the run's sentence length: `vocab.words_per_segment` clips (16, the paper's video
"sentence" when there is no narration). For each segment:

- its visual words;
- the zero-shot verb and noun top-5: the paper's template (`eval.zero_shot_template`, "now let me
  show you how to [MASK] the [MASK]") with `[>]` and the segment's words, each slot ranked over the
  run's verb and noun label sets (those of its Table 1), by mean log-probability
  (`vbert.tasks.zero_shot`);
- a caption from the captioner the run's evaluate stage kept (Table 3's "VideoBERT + clip features"
  row, `vbert.tasks.captioner_file`), greedy decoding;
- the alignment probability of each sentence given (`vbert.tasks.embeddings.alignment_scores`: the
  head on [CLS]; noise when the run's pretraining did not train it, as the tiny preset's does not).

With `similar`, the nearest videos of the run's dataset (`vbert.describe.similar`), leaving out the
video itself when it is one of them (a file of the run's own `videos/` folder).
`vbert.describe.report.describe` does this for several paths and writes the files.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vbert.config import Config
from vbert.describe.run import DEFAULT_RUN, FinishedRun, as_run
from vbert.describe.similar import similar_videos
from vbert.describe.words import VideoWords, video_words
from vbert.errors import VbertError
from vbert.tasks.caption_table import caption_inputs
from vbert.tasks.captioning import greedy_decode, pad_inputs
from vbert.tasks.embeddings import alignment_scores, caption_features
from vbert.tasks.zero_shot import zero_shot_scores


@dataclass
class SegmentDescription:
    """One segment of a described video."""

    index: int
    start: float  # seconds
    end: float
    words: list[int]
    verbs: list[tuple[str, float]]  # top-5 (label, mean log-probability), best first
    nouns: list[tuple[str, float]]
    caption: str | None  # None when the run has no captioner
    alignment: list[tuple[str, float]]  # (sentence, probability that it describes the segment)


@dataclass
class VideoDescription:
    """A described video: its visual words, its segments, and the run's videos most like it."""

    video: VideoWords
    segments: list[SegmentDescription]
    similar: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def words(self) -> list[int]:
        """The visual word of every clip, in time order."""
        return self.video.words


def segment_spans(num_clips: int, per_segment: int) -> list[tuple[int, int]]:
    """[start, end) clip ranges of consecutive segments of `per_segment` clips (the last may be shorter)."""
    if per_segment < 1:
        raise VbertError(f"a segment needs at least one clip, got {per_segment}")
    return [(a, min(a + per_segment, num_clips)) for a in range(0, num_clips, per_segment)]


def _top(scores: np.ndarray, names: list[str], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [(names[i], round(float(scores[i]), 4)) for i in order]


def _captions(
    run: FinishedRun,
    words: list[list[int]],
    features: list[np.ndarray],
    context: list[tuple[list[int], list[int]]],
) -> list[str | None]:
    """A caption per segment from the run's captioner (None each without one), each read in `context`."""
    captioner = run.captioner
    if captioner is None:
        return [None] * len(words)
    max_len = run.config.pretrain.max_seq_len
    videobert = None
    if captioner.input != "clip features":
        around = context if run.config.eval.caption_context else None  # as the captioner was trained
        videobert = caption_features(
            run.model, run.tokenizer, run.vocab, words, captioner.template, max_len, context=around
        )
    x, mask = pad_inputs(caption_inputs(captioner.input, features, videobert))  # [S, n, D], [S, n]
    device = next(captioner.model.parameters()).device
    decoded = greedy_decode(captioner.model, x.to(device), mask.to(device), captioner.max_len)
    return [captioner.vocab.decode(ids) for ids in decoded]


def _same_video(run: FinishedRun, path: Path) -> list[str]:
    """The run's own video that `path` is (a file of the run's dataset folder), left out of its similar videos."""
    if run.videos is None:
        return []
    return [path.stem] if path.resolve().parent == (run.videos / "videos").resolve() else []


def describe_video(
    path: str | Path,
    run: FinishedRun | Config | str | Path = DEFAULT_RUN,
    sentences: Sequence[str] = (),
    similar: int = 0,
    segment_words: int | None = None,
    top_k: int = 5,
) -> VideoDescription:
    """Describe one video file with a finished run (see the module docstring); a bad file is a DataError."""
    run = as_run(run)
    video = video_words(path, run)
    start = time.perf_counter()
    config = run.config
    per_segment = segment_words if segment_words is not None else config.vocab.words_per_segment
    spans = segment_spans(len(video.words), per_segment)
    words = [video.words[a:b] for a, b in spans]
    max_len = config.pretrain.max_seq_len
    mlm = run.model.mlm
    zero_shot = zero_shot_scores(
        mlm, run.tokenizer, run.vocab, config.eval.zero_shot_template, words, run.verbs, run.nouns, max_len
    )
    context = [(list(video.words[:a]), list(video.words[b:])) for a, b in spans]  # the rest of the video
    captions = _captions(run, words, [video.features[a:b] for a, b in spans], context)
    pairs = [(sentence, w) for w in words for sentence in sentences]
    aligned = alignment_scores(run.model, run.tokenizer, run.vocab, pairs, max_len).reshape(len(spans), -1)
    segments = [
        SegmentDescription(
            index=i,
            start=round(float(video.starts[a]), 3),
            end=round(float(video.ends[b - 1]), 3),
            words=words[i],
            verbs=_top(zero_shot.verb_scores[i], run.verbs.names, top_k),
            nouns=_top(zero_shot.noun_scores[i], run.nouns.names, top_k),
            caption=captions[i],
            alignment=[(s, round(float(p), 4)) for s, p in zip(sentences, aligned[i])],
        )
        for i, (a, b) in enumerate(spans)
    ]
    nearest = (
        similar_videos(run, video.words, similar, exclude=_same_video(run, video.path)) if similar > 0 else []
    )
    seconds = {**video.seconds, "model": round(time.perf_counter() - start, 3)}
    return VideoDescription(video, segments, nearest, {**seconds, "total": round(sum(seconds.values()), 3)})
