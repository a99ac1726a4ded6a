"""Read HowTo100M-style ASR captions into word-level narrations (`Narration`).

Two layouts are read: one JSON file `{video_id: {"text": [...], "start": [...], "end": [...]}}`
(HowTo100M's `raw_caption.json`; SynthCook's `narrations.json`), or a folder of per-video
`<video_id>.csv` files with a `start,end,text` header. HowTo100M's entries are short phrases;
they are split into words, each given an equal share of its phrase's time span, so every
later stage sees one word per entry. Text is lower-cased and stripped of punctuation.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

from vbert.core.manifest import read_json
from vbert.data.dataset import Failure, Narration, VideoDataset
from vbert.errors import DataError

_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def normalise(text: str) -> list[str]:
    """Lower-case words of an ASR phrase, punctuation removed ("Now, ADD salt!" -> [now, add, salt])."""
    return _NOT_WORD.sub(" ", str(text).lower()).replace("'", "").split()


def to_narration(entry: Any, where: str) -> Narration:
    """One caption entry ({"text", "start", "end"} lists) as a word-level Narration."""
    if not isinstance(entry, dict):
        raise DataError(f"{where}: caption entry is not a JSON object")
    missing = [k for k in ("text", "start", "end") if k not in entry]
    if missing:
        raise DataError(f"{where}: caption entry is missing {', '.join(missing)}")
    texts, starts, ends = entry["text"], entry["start"], entry["end"]
    if not (isinstance(texts, list) and isinstance(starts, list) and isinstance(ends, list)):
        raise DataError(f"{where}: text, start and end must be lists")
    if not (len(texts) == len(starts) == len(ends)):
        raise DataError(f"{where}: {len(texts)} texts but {len(starts)} starts and {len(ends)} ends")
    words, word_starts, word_ends = [], [], []
    for k, (text, start, end) in enumerate(zip(texts, starts, ends)):
        if not isinstance(text, str):
            raise DataError(f"{where}: entry {k} text {text!r} is not a string")
        try:
            if isinstance(start, bool) or isinstance(end, bool):
                raise TypeError
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise DataError(f"{where}: entry {k} has non-numeric times {start!r}, {end!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise DataError(f"{where}: entry {k} has non-finite times [{start}, {end}]")
        if not (0 <= start <= end):
            raise DataError(f"{where}: entry {k} has times [{start}, {end}] out of order")
        pieces = normalise(text)
        step = (end - start) / max(1, len(pieces))
        for j, word in enumerate(pieces):
            words.append(word)
            word_starts.append(round(start + j * step, 3))
            word_ends.append(round(start + (j + 1) * step, 3))
    return Narration(words, word_starts, word_ends)


def _read_csv(path: Path) -> dict[str, list]:
    """One `<video_id>.csv` as {"text", "start", "end"} lists; a problem is a DataError naming the file."""
    out: dict[str, list] = {"text": [], "start": [], "end": []}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"start", "end", "text"} <= set(reader.fieldnames):
                raise DataError(f"{path}: expected a CSV header with start, end and text")
            for row in reader:
                if None in row:
                    raise DataError(
                        f"{path}: line {reader.line_num} has more fields than the header "
                        "(quote text that holds commas)"
                    )
                for key, column in out.items():
                    if row[key] is None:
                        raise DataError(f"{path}: line {reader.line_num} has no {key} value")
                    column.append(row[key])
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable UTF-8 CSV file ({err})") from None
    return out


def load_captions(path: str | Path, failures: list[Failure] | None = None) -> dict[str, Narration]:
    """Captions by video id, from a JSON file or a folder of CSVs.

    A bad entry raises a DataError naming the file and the video, unless a `failures` list is
    given: then it is recorded there and the rest is read.
    """
    path = Path(path)
    sources: dict[str, Path] = {}  # the CSV file of each video, when read from a folder
    if path.is_dir():
        csv_paths = sorted(p for p in path.glob("*.csv") if p.is_file())
        if not csv_paths:
            hint = " (for a JSON caption file, pass the file itself)" if any(path.glob("*.json")) else ""
            raise DataError(f"{path}: the caption folder holds no <video_id>.csv files{hint}")
        raw = {}
        for csv_path in csv_paths:
            sources[csv_path.stem] = csv_path
            try:
                raw[csv_path.stem] = _read_csv(csv_path)
            except DataError as err:
                if failures is None:
                    raise
                failures.append(Failure(csv_path.stem, str(err)))
    elif path.is_file():
        raw = read_json(path)
        if not isinstance(raw, dict):
            raise DataError(f"{path}: expected a JSON object mapping video ids to captions")
    else:
        raise DataError(f"{path}: caption file or folder not found")
    out = {}
    for video_id, entry in raw.items():
        try:
            out[video_id] = to_narration(entry, f"{sources.get(video_id, path)}: video {video_id}")
        except DataError as err:
            if failures is None:
                raise
            failures.append(Failure(video_id, str(err)))
    return out


def attach_narrations(dataset: VideoDataset, captions: dict[str, Narration]) -> VideoDataset:
    """Give each video of `dataset` its narration (videos without one keep None)."""
    for video_id, record in dataset.videos.items():
        record.narration = captions.get(video_id, record.narration)
    return dataset
