"""The in-memory form every stage reads: videos, their annotated segments and their narration.

SynthCook, YouCook2 and HowTo100M-style captions are all loaded into these records, so every
later stage runs unchanged on either. Loaders live in their own modules; this one holds only
the shared types and the rule that cuts an unpunctuated ASR stream into sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Segment:
    """One annotated step: [start, end] seconds, its caption, and (when known) verb and noun."""

    id: int
    start: float
    end: float
    sentence: str
    verb: str | None = None
    noun: str | None = None
    references: list[str] = field(default_factory=list)  # every reference caption ([sentence] when one)
    occluded: bool | None = None  # SynthCook: the action is hidden from the camera (None: not known)

    def __post_init__(self) -> None:
        if not self.references:
            self.references = [self.sentence]


@dataclass
class Sentence:
    """A run of narration words, with the time span it covers."""

    text: str
    start: float
    end: float


@dataclass
class Narration:
    """ASR-style narration: one entry per word with its start and end time (seconds)."""

    words: list[str]
    starts: list[float]
    ends: list[float]

    def __post_init__(self) -> None:
        if not (len(self.words) == len(self.starts) == len(self.ends)):
            raise ValueError(
                f"narration has {len(self.words)} words but {len(self.starts)} starts and {len(self.ends)} ends"
            )

    def sentences(self, max_gap: float = 0.6, max_words: int = 24) -> list[Sentence]:
        """Cut the word stream into sentences at pauses longer than `max_gap` seconds.

        Real ASR has no punctuation (the paper punctuates it with an LSTM model); a pause in
        speech is our documented stand-in. Sentences are also cut at `max_words`.
        """
        out: list[Sentence] = []
        current: list[int] = []
        for i in range(len(self.words)):
            if current and (self.starts[i] - self.ends[current[-1]] > max_gap or len(current) >= max_words):
                out.append(self._sentence(current))
                current = []
            current.append(i)
        if current:
            out.append(self._sentence(current))
        return out

    def _sentence(self, idx: list[int]) -> Sentence:
        return Sentence(" ".join(self.words[i] for i in idx), self.starts[idx[0]], self.ends[idx[-1]])


@dataclass
class VideoRecord:
    """One video: where it is, how long, which split, its ground truth and its narration."""

    video_id: str
    path: Path | None
    duration: float
    subset: str  # "training", "validation" or "testing"
    recipe_type: str = ""
    segments: list[Segment] = field(default_factory=list)
    narration: Narration | None = None


@dataclass
class Failure:
    """Something a batch job could not use, and why; batch jobs record these and carry on."""

    item: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form for manifests and reports."""
        return {"item": self.item, "reason": self.reason}


@dataclass
class VideoDataset:
    """A set of videos plus the label sets (verbs, nouns, recipe types) and what failed to load."""

    videos: dict[str, VideoRecord]
    verbs: list[str] = field(default_factory=list)
    nouns: list[str] = field(default_factory=list)
    recipe_types: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def split(self, subset: str) -> list[VideoRecord]:
        """The videos of one subset, in a stable order."""
        return [v for _, v in sorted(self.videos.items()) if v.subset == subset]
