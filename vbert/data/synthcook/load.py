"""Read a SynthCook folder back: the cooking videos as a VideoDataset, and the labelled action clips."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vbert.core.manifest import read_json
from vbert.data.dataset import VideoDataset
from vbert.data.howto100m import attach_narrations, load_captions
from vbert.data.synthcook.world import NOUNS, RECIPES, VERBS
from vbert.data.youcook2 import load_youcook2
from vbert.errors import DataError

CLIP_FIELDS = ("id", "path", "verb", "noun", "subset")


@dataclass
class ActionClip:
    """A labelled single-action clip: its file, its verb and noun, and its subset."""

    id: str
    path: Path
    verb: str
    noun: str
    subset: str  # "training" or "validation" (disjoint)


def load_synthcook(root: str | Path) -> VideoDataset:
    """The videos of a SynthCook folder with annotations and narration; failures are recorded, not raised."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: SynthCook folder not found (run `vbert generate` or ensure_synthcook)")
    dataset = load_youcook2(root / "annotations.json", video_dir=root / "videos")
    attach_narrations(dataset, load_captions(root / "narrations.json", failures=dataset.failures))
    dataset.verbs, dataset.nouns, dataset.recipe_types = list(VERBS), list(NOUNS), list(RECIPES)
    return dataset


def load_action_clips(root: str | Path) -> list[ActionClip]:
    """The action clips listed in `root/action_clips.json`, paths resolved against `root`."""
    root = Path(root)
    path = root / "action_clips.json"
    if not path.is_file():
        raise DataError(f"{path}: action clip list not found")
    entries = read_json(path)
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a list of clips")
    clips = []
    for k, entry in enumerate(entries):
        missing = [f for f in CLIP_FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise DataError(f"{path}: clip {k} is missing field(s) {', '.join(missing)}")
        clips.append(
            ActionClip(entry["id"], root / entry["path"], entry["verb"], entry["noun"], entry["subset"])
        )
    return clips
