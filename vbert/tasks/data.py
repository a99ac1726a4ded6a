"""What the downstream tasks read: annotated segments with their visual words, and clip features.

Segments come from a token file (`tokens.jsonl`, written by `vbert tokenize`): every ground-truth
segment carries its caption, its verb and noun (SynthCook) and the visual words of its clips.
YouCook2 segments have no verb or noun: `fill_labels` reads them from the caption by the rule of
`vbert.tasks.labels`. Clip features (for the supervised probe and captioning) come from a
features folder (`vbert.features.store`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vbert.errors import DataError
from vbert.features.store import FeatureStore
from vbert.tasks.labels import build_label_sets, labels_from_caption
from vbert.visual_words.token_file import read_token_file
from vbert.visual_words.tokenize import clips_in_span


@dataclass
class EvalSegment:
    """One annotated segment: where it is, what it says, its labels and its visual words."""

    video_id: str
    subset: str
    recipe_type: str
    start: float
    end: float
    sentence: str
    verb: str | None
    noun: str | None
    video_words: list[int] = field(default_factory=list)
    index: int = 0  # position of the segment within its video
    references: list[str] = field(default_factory=list)  # every reference caption ([sentence] when one)
    occluded: bool | None = None  # SynthCook: the action is hidden from the camera
    before: list[int] = field(default_factory=list)  # the video's words before the segment's clips
    after: list[int] = field(default_factory=list)  # and after them

    def __post_init__(self) -> None:
        if not self.references:
            self.references = [self.sentence]


@dataclass
class EvalVideo:
    """One video of a token file: its whole visual-word sequence and its segments in time order."""

    video_id: str
    subset: str
    recipe_type: str
    words: list[int]
    segments: list[EvalSegment]


def load_videos(tokens: str | Path, subsets: Sequence[str] | None = ("validation",)) -> list[EvalVideo]:
    """Videos of a token file (the file or its folder), keeping `subsets` (None keeps all)."""
    path = Path(tokens)
    out = []
    for record in read_token_file(path):  # every record checked against the format
        subset = record.get("subset", "training")
        if subsets is not None and subset not in subsets:
            continue
        segments = []
        words = [int(w) for w in record["words"]]
        starts, ends = np.asarray(record.get("clip_starts", [])), np.asarray(record.get("clip_ends", []))
        for i, s in enumerate(record.get("segments", [])):
            own = (
                clips_in_span(starts, ends, float(s["start"]), float(s["end"]))
                if len(starts) == len(words)
                else []
            )
            first, last = (int(own[0]), int(own[-1])) if len(own) else (0, -1)
            segments.append(
                EvalSegment(
                    str(record["video_id"]),
                    subset,
                    record.get("recipe_type", ""),
                    float(s["start"]),
                    float(s["end"]),
                    s["sentence"],
                    s.get("verb"),
                    s.get("noun"),
                    [int(w) for w in s["video_words"]],
                    i,
                    list(s.get("references") or [s["sentence"]]),
                    s.get("occluded"),
                    words[:first] if len(own) else [],
                    words[last + 1 :] if len(own) else [],
                )
            )
        out.append(
            EvalVideo(
                str(record["video_id"]),
                subset,
                record.get("recipe_type", ""),
                [int(w) for w in record["words"]],
                segments,
            )
        )
    if not out:
        raise DataError(f"{path}: no video of subset {'/'.join(subsets or [])} in this token file")
    return out


def load_segments(
    tokens: str | Path, subsets: Sequence[str] | None = ("validation",), min_words: int = 1
) -> list[EvalSegment]:
    """All segments of the chosen subsets that have at least `min_words` visual words."""
    return [s for v in load_videos(tokens, subsets) for s in v.segments if len(s.video_words) >= min_words]


def label_sets(segments: Sequence[EvalSegment]) -> tuple[list[str], list[str]]:
    """Sorted verb and noun label sets of segments that carry labels."""
    verbs = sorted({s.verb for s in segments if s.verb})
    nouns = sorted({s.noun for s in segments if s.noun})
    return verbs, nouns


def fill_labels(
    segments: Sequence[EvalSegment],
    train_captions: Sequence[str] | None = None,
    verbs: Sequence[str] | None = None,
    nouns: Sequence[str] | None = None,
) -> list[EvalSegment]:
    """Segments without verb/noun read them from their caption (label sets given, or from train captions)."""
    if verbs is None or nouns is None:
        if not train_captions:
            raise DataError("labels from captions need the label sets or the training captions to build them")
        verbs, nouns = build_label_sets(train_captions)
    out = []
    for s in segments:
        if s.verb and s.noun:
            out.append(s)
            continue
        verb, noun = labels_from_caption(s.sentence, verbs, nouns)
        out.append(replace(s, verb=s.verb or verb, noun=s.noun or noun))
    return out


def with_labels(
    train: Sequence[EvalSegment], val: Sequence[EvalSegment]
) -> tuple[list[EvalSegment], list[EvalSegment], list[str], list[str]]:
    """(train, val, verbs, nouns): label sets of the annotations, or, where segments lack labels
    (YouCook2), label sets built from the training captions and labels read from every caption."""
    if all(s.verb and s.noun for s in [*train, *val]):
        verbs, nouns = label_sets([*train, *val])
        return list(train), list(val), verbs, nouns
    verbs, nouns = build_label_sets([s.sentence for s in train])
    return (
        fill_labels(train, verbs=verbs, nouns=nouns),
        fill_labels(val, verbs=verbs, nouns=nouns),
        verbs,
        nouns,
    )


def segment_features(store: FeatureStore, segments: Sequence[EvalSegment]) -> list[np.ndarray]:
    """Clip features [n_i, D] of each segment: the clips whose centre lies inside it (nearest if none)."""
    out = []
    for s in segments:
        try:
            vectors, starts, ends = store.clips_of(s.video_id)
        except KeyError:
            raise DataError(
                f"{store.folder}: no features for video '{s.video_id}' (features and tokens "
                "from different datasets?)"
            ) from None
        idx = clips_in_span(starts, ends, s.start, s.end)
        if len(idx) == 0:
            idx = np.array([int(np.argmin(np.abs((starts + ends) / 2 - (s.start + s.end) / 2)))])
        out.append(vectors[idx])
    return out
