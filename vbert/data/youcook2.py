"""Read YouCook2 annotation files (and SynthCook's, which use the same format) into a VideoDataset.

The format, `youcookii_annotations_trainval.json`:
`{"database": {video_id: {"annotations": [{"id", "segment": [start, end], "sentence"}],
"duration", "recipe_type", "subset", "video_url"}}}`. SynthCook's annotations also carry
"verb" and "noun"; real YouCook2 ones do not (those fields stay None). A bad entry read alone
is a DataError naming the file and the video; in `load_youcook2` it becomes a Failure and
the rest is loaded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vbert.core.manifest import read_json
from vbert.data.dataset import Failure, Segment, VideoDataset, VideoRecord
from vbert.data.video import VIDEO_SUFFIXES
from vbert.errors import DataError

ENTRY_FIELDS = ("annotations", "duration", "subset")
ANNOTATION_FIELDS = ("id", "segment", "sentence")
SEGMENT_SLACK = 0.5  # seconds a segment may overrun the stated duration (rounding in the real files)


def _references(ann: dict[str, Any], where: str) -> list[str]:
    """Every reference caption of an annotation: its "sentences" list when present, else its "sentence"."""
    if "sentences" not in ann:
        return [ann["sentence"].strip()]
    refs = ann["sentences"]
    if not isinstance(refs, list):
        raise DataError(f"{where}: sentences {refs!r} is not a list of reference captions")
    if not refs:
        raise DataError(f"{where}: sentences is empty (a segment needs at least one reference caption)")
    for j, ref in enumerate(refs):
        if not isinstance(ref, str) or not ref.strip():
            raise DataError(f"{where}: reference caption {j} {ref!r} is empty or not a string")
    return [ref.strip() for ref in refs]


def read_annotation_file(path: str | Path) -> dict[str, Any]:
    """The `database` mapping of a YouCook2-format file; a missing or malformed file is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise DataError(f"{path}: expected a JSON object with a 'database' mapping (YouCook2 format)")
    return data["database"]


def index_videos(video_dir: str | Path) -> dict[str, Path]:
    """Video files in `video_dir` and its subfolders (e.g. training/, validation/), by file stem."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise DataError(f"{video_dir}: video folder not found")
    found = {}
    for path in sorted(video_dir.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file() and not path.name.startswith("."):
            found.setdefault(path.stem, path)
    return found


def _is_number(value: Any) -> bool:
    """An int or float, not a bool (JSON true/false are ints in Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _annotation_id(value: Any, where: str) -> int:
    """An annotation's integer id (an int, a whole float or a decimal string); anything else is a DataError."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise DataError(f"{where} id {value!r} is not an integer")


def parse_entry(
    video_id: str, entry: Any, source: str | Path, videos: dict[str, Path] | None = None
) -> VideoRecord:
    """One database entry as a VideoRecord; a problem is a DataError naming the file and the video."""
    where = f"{source}: video {video_id}"
    if not isinstance(entry, dict):
        raise DataError(f"{where}: entry is not a JSON object")
    missing = [f for f in ENTRY_FIELDS if f not in entry]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        if isinstance(entry["duration"], bool):
            raise TypeError
        duration = float(entry["duration"])
    except (TypeError, ValueError):
        raise DataError(f"{where}: duration {entry['duration']!r} is not a number") from None
    if not math.isfinite(duration):
        raise DataError(f"{where}: duration {entry['duration']!r} is not a finite number")
    if duration <= 0:
        raise DataError(f"{where}: duration {duration} is not positive")
    if not isinstance(entry["subset"], str):
        raise DataError(f"{where}: subset {entry['subset']!r} is not a string")
    if not isinstance(entry["annotations"], list):
        raise DataError(f"{where}: 'annotations' is not a list")
    segments = []
    for k, ann in enumerate(entry["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(f"{where}: annotation {k} is not a JSON object")
        missing = [f for f in ANNOTATION_FIELDS if f not in ann]
        if missing:
            raise DataError(f"{where}: annotation {k} is missing field(s) {', '.join(missing)}")
        seg_id = _annotation_id(ann["id"], f"{where}: annotation {k}")
        if any(seg.id == seg_id for seg in segments):
            raise DataError(f"{where}: annotation {k} repeats the id {seg_id} of an earlier annotation")
        seg = ann["segment"]
        if not (isinstance(seg, (list, tuple)) and len(seg) == 2 and all(_is_number(x) for x in seg)):
            raise DataError(f"{where}: annotation {k} segment {seg!r} is not [start, end]")
        start, end = float(seg[0]), float(seg[1])
        if not (math.isfinite(start) and math.isfinite(end)):
            raise DataError(f"{where}: annotation {k} segment [{start}, {end}] has a non-finite time")
        if end < start:
            raise DataError(f"{where}: annotation {k} segment [{start}, {end}] has its end before its start")
        if end == start:
            raise DataError(f"{where}: annotation {k} segment [{start}, {end}] is empty (end equals start)")
        if not (0 <= start and end <= duration + SEGMENT_SLACK):
            raise DataError(
                f"{where}: annotation {k} segment [{start}, {end}] is outside the video (0 to {duration} s)"
            )
        if not isinstance(ann["sentence"], str):
            raise DataError(f"{where}: annotation {k} sentence {ann['sentence']!r} is not a string")
        if not ann["sentence"].strip():
            raise DataError(f"{where}: annotation {k} has an empty sentence")
        for field in ("verb", "noun"):
            if ann.get(field) is not None and not isinstance(ann[field], str):
                raise DataError(f"{where}: annotation {k} {field} {ann[field]!r} is not a string")
        references = _references(ann, f"{where}: annotation {k} (id {seg_id})")
        occluded = ann.get("occluded")
        if occluded is not None and not isinstance(occluded, bool):
            raise DataError(f"{where}: annotation {k} occluded {occluded!r} is not true or false")
        segments.append(
            Segment(
                seg_id,
                start,
                min(end, duration),
                ann["sentence"].strip(),
                ann.get("verb"),
                ann.get("noun"),
                references,
                occluded,
            )
        )
    path = videos.get(video_id) if videos is not None else None
    if videos is not None and path is None:
        raise DataError(f"{where}: no video file for it in the video folder")
    return VideoRecord(
        video_id,
        path,
        duration,
        str(entry["subset"]),
        str(entry.get("recipe_type", "")),
        sorted(segments, key=lambda s: s.start),
    )


def load_youcook2(
    annotation_file: str | Path,
    video_dir: str | Path | None = None,
    subsets: list[str] | tuple[str, ...] | None = None,
    strict: bool = False,
) -> VideoDataset:
    """Load a YouCook2-format file; bad entries (and missing videos, when `video_dir` is given) become failures.

    With `strict`, the first bad entry raises its DataError instead.
    """
    database = read_annotation_file(annotation_file)
    files = index_videos(video_dir) if video_dir is not None else None
    videos, failures = {}, []
    for video_id, entry in database.items():
        if subsets is not None and isinstance(entry, dict) and entry.get("subset") not in subsets:
            continue
        try:
            videos[video_id] = parse_entry(video_id, entry, annotation_file, files)
        except DataError as err:
            if strict:
                raise
            failures.append(Failure(video_id, str(err)))
    verbs = sorted({s.verb for v in videos.values() for s in v.segments if s.verb})
    nouns = sorted({s.noun for v in videos.values() for s in v.segments if s.noun})
    recipes = sorted({v.recipe_type for v in videos.values() if v.recipe_type})
    return VideoDataset(videos, verbs, nouns, recipes, failures)
