"""The token file (`tokens.jsonl`, written by `vbert tokenize`): its name, its writer and its one reader.

One JSON object per line: `video_id`, `subset`, `words` (every clip's visual word) and `sentences`,
each with its `text` and the `video_words` of the clips in its span (docs/architecture.md). A record
of the wrong shape or type, or words of another vocabulary, is a DataError naming the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vbert.core.manifest import atomic_write_bytes
from vbert.errors import DataError

TOKENS_FILE = "tokens.jsonl"


def token_file(path: str | Path) -> Path:
    """The tokens.jsonl named by `path` (the file, or the folder holding it)."""
    path = Path(path)
    return path / TOKENS_FILE if path.is_dir() else path


def write_token_file(folder: Path, records: list[dict[str, Any]]) -> Path:
    """Write `folder/tokens.jsonl` atomically, one record per line; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    atomic_write_bytes(folder / TOKENS_FILE, ("\n".join(lines) + "\n").encode("utf-8"))
    return folder / TOKENS_FILE


def tokens_visual_size(folder: Path) -> int | None:
    """k**depth of the vocabulary a token folder was made with, as its manifest says (None: unknown)."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8")).get("config", {})
    except (OSError, json.JSONDecodeError, AttributeError) as err:
        raise DataError(f"{path}: manifest is not readable JSON ({err})") from None
    vocab = config.get("vocab", config) if isinstance(config, dict) else {}
    if isinstance(vocab, dict) and "k" in vocab and "depth" in vocab:
        try:
            return int(vocab["k"]) ** int(vocab["depth"])
        except (TypeError, ValueError):
            raise DataError(
                f"{path}: vocab k {vocab['k']!r} and depth {vocab['depth']!r} are not integers"
            ) from None
    return None


def _check_manifest_vocab(folder: Path, visual_size: int) -> None:
    """Refuse a token folder whose manifest says it was made with another k**depth."""
    theirs = tokens_visual_size(folder)
    if theirs is not None and theirs != visual_size:
        vocab = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["config"]
        vocab = vocab.get("vocab", vocab)
        raise DataError(
            f"{folder / 'manifest.json'}: these tokens use a vocabulary of {vocab['k']}^{vocab['depth']} "
            f"= {theirs} visual words, but this config expects {visual_size}; re-run `vbert tokenize`"
        )


def _check_visual_words(words: Any, where: str, what: str, visual_size: int | None) -> None:
    """Refuse a visual word list that is not a list of ints (not bools) in [0, visual_size)."""
    if not isinstance(words, list):
        raise DataError(f"{where}: {what} is not a list of visual words (got {type(words).__name__})")
    for w in words:
        if isinstance(w, bool) or not isinstance(w, int):
            raise DataError(f"{where}: {what}: visual word {w!r} is not an integer")
        if w < 0 or (visual_size is not None and w >= visual_size):
            raise DataError(
                f"{where}: {what}: visual word {w!r} is outside [0, {'K' if visual_size is None else visual_size}): "
                "these tokens come from another vocabulary"
            )


def _check_token_record(record: Any, where: str, visual_size: int | None) -> None:
    """Refuse a tokens.jsonl record that does not have the documented fields and types."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object (one video per line), got {type(record).__name__}")
    missing = [k for k in ("video_id", "words") if k not in record]
    if missing:
        raise DataError(f"{where}: record lacks {', '.join(missing)}")
    if not isinstance(record["video_id"], str):
        raise DataError(f"{where}: video_id {record['video_id']!r} is not a string")
    if not isinstance(record.get("subset", "training"), str):
        raise DataError(f"{where}: subset {record['subset']!r} is not a string")
    _check_visual_words(record["words"], where, "words", visual_size)
    segments = record.get("segments", [])
    if not isinstance(segments, list):
        raise DataError(f"{where}: segments is not a list (got {type(segments).__name__})")
    for i, segment in enumerate(segments):
        missing = (
            [k for k in ("start", "end", "sentence", "video_words") if k not in segment]
            if isinstance(segment, dict)
            else ["its fields (not a JSON object)"]
        )
        if missing:
            raise DataError(f"{where}: video {record['video_id']} segment {i} lacks {', '.join(missing)}")
        _check_visual_words(segment["video_words"], where, f"segment {i} video_words", visual_size)
        refs = segment.get("references", [segment["sentence"]])
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
            raise DataError(
                f"{where}: video {record['video_id']} segment {i} references {refs!r} is not a list "
                "of non-empty captions"
            )
    if "sentences" not in record:
        raise DataError(f"{where}: record lacks sentences")
    if not isinstance(record["sentences"], list):
        raise DataError(f"{where}: sentences is not a list (got {type(record['sentences']).__name__})")
    for j, s in enumerate(record["sentences"]):
        if not isinstance(s, dict):
            raise DataError(f"{where}: sentence {j} is not a JSON object")
        if "text" not in s or "video_words" not in s:
            raise DataError(f"{where}: sentence {j} lacks 'text' or 'video_words'")
        if not isinstance(s["text"], str):
            raise DataError(f"{where}: sentence {j} text {s['text']!r} is not a string")
        _check_visual_words(s["video_words"], where, f"sentence {j} video_words", visual_size)


def read_token_file(
    path: str | Path, visual_size: int | None = None, subsets: tuple[str, ...] | None = None
) -> list[dict]:
    """The records of a tokens.jsonl (the file or its folder), each checked; those of `subsets` (None: all).

    Visual words must lie in [0, visual_size); without `visual_size`, the size the folder's manifest
    records is used (none recorded: only their type is checked). No record of `subsets` is an error.
    """
    path = token_file(path)
    if not path.is_file():
        raise DataError(f"{path}: token file not found (run `vbert tokenize` first)")
    if visual_size is None:
        visual_size = tokens_visual_size(path.parent)
    else:
        _check_manifest_vocab(path.parent, visual_size)
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg}); the file may be truncated") from None
            _check_token_record(record, where, visual_size)
            if subsets is None or record.get("subset", "training") in subsets:
                records.append(record)
    if not records:
        chosen = "any subset" if subsets is None else "subset " + "/".join(subsets)
        raise DataError(f"{path}: no videos of {chosen}: the dataset is empty")
    return records
