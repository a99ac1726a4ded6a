"""A `vbert run` folder: one sub-folder per stage, and `pipeline.json`, what each stage last read.

`pipeline.json` records, per stage, the identity (manifest file hash) of each folder it read, the
identity of what it wrote, its time and its summary. A stage whose inputs changed since (an earlier
stage ran again) runs again even where its own manifest looks complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vbert.core.manifest import MANIFEST, atomic_write_json, file_sha256, read_json
from vbert.errors import DataError

STATE_FILE = "pipeline.json"


def read_state(run_dir: Path) -> dict[str, Any]:
    """`run_dir/pipeline.json`: per stage, the input hashes it ran with, its output hash, time, summary."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return {}
    try:
        state = read_json(path)
    except DataError as err:
        raise DataError(f"{err}; delete it to let every stage check itself") from None
    if not isinstance(state, dict):
        raise DataError(f"{path}: expected a JSON object of stages")
    return state


def write_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write `run_dir/pipeline.json` atomically."""
    atomic_write_json(run_dir / STATE_FILE, state)


def artifact_identity(folder: Path) -> str:
    """SHA-256 of a folder's manifest file ("" without one).

    The whole file, creation time included: a stage that ran again rewrote its manifest, so what
    it produced counts as new even where its config and counts are the same as before.
    """
    path = folder / MANIFEST
    return file_sha256(path) if path.is_file() else ""


def run_folder_of(path: str | Path, folder: str) -> Path | None:
    """The `vbert run` folder whose `folder` stage output `path` is (or holds), or None."""
    path = Path(path)
    here = path if path.is_dir() else path.parent
    return here.parent if here.name == folder and (here.parent / STATE_FILE).is_file() else None
