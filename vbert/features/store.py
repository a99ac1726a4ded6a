"""Clip features on disk: float16 shards, each with a JSON index of (video id, clip start, end).

Layout of a features folder::

    shard-r0-00000.npy    float16 [n, D]   the clip vectors
    shard-r0-00000.json   {"dim": D, "count": n, "rows": [[video_id, start_s, end_s], ...]}
    manifest.json         written by the extraction stage when everything is done

A shard counts only once its JSON index exists, and the index is written (atomically) after
the array, so a run killed mid-shard loses at most that shard and resumes from the videos the
finished shards hold. Each torchrun rank writes its own `shard-r{rank}-*` files; reading the
folder merges them all into one index. Files whose names do not have exactly this form (a
`shard-r0-00000 (copy).json` left by a file manager) are not shards and are ignored.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np

from vbert.core.manifest import atomic_write_bytes, atomic_write_json
from vbert.errors import DataError

SHARD_INDEX = re.compile(r"shard-r(\d+)-(\d+)\.json")


def shard_indexes(folder: str | Path, rank: int | None = None) -> list[Path]:
    """The shard index files of a features folder (of one rank, when given), sorted; other names are ignored."""
    found = []
    for path in Path(folder).glob("shard-r*-*.json"):
        match = SHARD_INDEX.fullmatch(path.name)
        if match and (rank is None or int(match.group(1)) == rank):
            found.append(path)
    return sorted(found)


class FeatureWriter:
    """Append clip features video by video; every `shard_size` rows become one finished shard."""

    def __init__(self, folder: str | Path, dim: int, rank: int = 0, shard_size: int = 4096) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dim, self.rank, self.shard_size = dim, rank, shard_size
        done = shard_indexes(self.folder, rank)
        self.next_shard = 1 + max((int(p.stem.rsplit("-", 1)[1]) for p in done), default=-1)
        self._vectors: list[np.ndarray] = []
        self._rows: list[list] = []

    def add(self, video_id: str, vectors: np.ndarray, starts: list[float], ends: list[float]) -> None:
        """Queue one video's clips: `vectors` is [n, D]; a video is never split across shards."""
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise DataError(
                f"features for {video_id}: expected shape [n, {self.dim}], got {list(vectors.shape)}"
            )
        if not (len(vectors) == len(starts) == len(ends)):
            raise DataError(f"features for {video_id}: {len(vectors)} vectors but {len(starts)} clip times")
        self._vectors.append(vectors.astype(np.float16))
        self._rows += [[video_id, float(s), float(e)] for s, e in zip(starts, ends)]
        if len(self._rows) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write what is queued as a finished shard (array first, then its index)."""
        if not self._rows:
            return
        stem = self.folder / f"shard-r{self.rank}-{self.next_shard:05d}"
        array = np.concatenate(self._vectors) if self._vectors else np.zeros((0, self.dim), np.float16)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        atomic_write_bytes(stem.with_suffix(".npy"), buffer.getvalue())
        atomic_write_json(
            stem.with_suffix(".json"), {"dim": self.dim, "count": len(self._rows), "rows": self._rows}
        )
        self.next_shard += 1
        self._vectors, self._rows = [], []


class FeatureStore:
    """All finished shards of a features folder, merged and checked, as one table of clips."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: features folder not found")
        arrays, rows, dims = [], [], set()
        owner: dict[str, str] = {}  # video id -> the shard index that holds it
        for index_path in shard_indexes(self.folder):
            array_path = index_path.with_suffix(".npy")
            index = _read_index(index_path)
            try:
                array = np.load(array_path, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise DataError(f"{array_path}: cannot read feature shard ({err})") from None
            if (
                array.ndim != 2
                or array.shape != (index["count"], index["dim"])
                or len(index["rows"]) != index["count"]
            ):
                raise DataError(
                    f"{array_path}: shape {list(array.shape)} does not match its index {index_path.name} "
                    f"({index['count']} rows of dimension {index['dim']}, {len(index['rows'])} listed)"
                )
            if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
                raise DataError(
                    f"{array_path}: feature values must be finite floats (got {array.dtype}, or NaN/inf)"
                )
            _check_rows(index_path, index["rows"])
            for video_id in dict.fromkeys(r[0] for r in index["rows"]):
                if video_id in owner:
                    raise DataError(
                        f"{index_path}: video '{video_id}' is also in {owner[video_id]} (shards from two runs?)"
                    )
                owner[video_id] = index_path.name
            dims.add(index["dim"])
            arrays.append(array)
            rows += index["rows"]
        if len(dims) > 1:
            raise DataError(f"{self.folder}: shards of different dimensions {sorted(dims)}")
        self.dim = dims.pop() if dims else 0
        self.features = np.concatenate(arrays) if arrays else np.zeros((0, self.dim), np.float16)  # [N, D]
        self.video_ids = [r[0] for r in rows]
        self.starts = np.array([r[1] for r in rows], dtype=np.float64)
        self.ends = np.array([r[2] for r in rows], dtype=np.float64)
        self._spans: dict[str, tuple[int, int]] = {}
        for i, vid in enumerate(self.video_ids):
            first, _ = self._spans.get(vid, (i, i))
            self._spans[vid] = (first, i + 1)

    def __len__(self) -> int:
        return len(self.video_ids)

    def videos(self) -> list[str]:
        """Video ids present, in storage order."""
        return list(self._spans)

    def clips_of(self, video_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vectors [n, D] float32, starts [n], ends [n]) of one video's clips, in time order."""
        if video_id not in self._spans:
            raise KeyError(f"{self.folder}: no features for video '{video_id}'")
        a, b = self._spans[video_id]
        return self.features[a:b].astype(np.float32), self.starts[a:b], self.ends[a:b]


def _check_rows(path: Path, rows: list) -> None:
    """Every index row must be [video_id, start_s, end_s] with start <= end."""
    for i, row in enumerate(rows):
        ok = isinstance(row, list) and len(row) == 3 and isinstance(row[0], str)
        ok = ok and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in row[1:])
        if not ok or row[1] > row[2]:
            raise DataError(
                f"{path}: row {i} is {row!r}, expected [video_id, start_s, end_s] with start <= end"
            )


def _read_index(path: Path) -> dict:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: feature index is not readable JSON ({err})") from None
    for key in ("dim", "count", "rows"):
        if key not in index:
            raise DataError(f"{path}: feature index lacks '{key}'")
    return index
