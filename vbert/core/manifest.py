"""Artifact manifests, hashing, atomic writes and the stage cache.

Every stage writes its outputs into a folder with a `manifest.json`: the stage, its config,
hashes of its inputs, package versions, what failed, and `"complete": true` once finished.
A re-run whose manifest is complete and whose config and inputs match is skipped; notebooks
reuse what earlier stages built through `cached_stage`, keyed by the config sections it reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from vbert.errors import DataError

MANIFEST = "manifest.json"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def json_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON form of `obj` (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` so that `path` holds either the old or the new bytes, never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are ordinary readable files
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomically write `obj` as indented UTF-8 JSON."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=False, default=str).encode("utf-8"))


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages whose behaviour shapes an artifact."""
    out = {"python": platform.python_version()}
    for name in (
        "vbert",
        "torch",
        "torchvision",
        "transformers",
        "tokenizers",
        "numpy",
        "opencv-python-headless",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    with contextlib.suppress(ImportError):
        import torch

        out["torch"] = torch.__version__  # carries the build, e.g. +cu130
    return out


def write_manifest(
    folder: str | Path,
    stage: str,
    config: dict[str, Any],
    inputs: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
    failures: list[dict[str, str]] | None = None,
    complete: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """Write `folder/manifest.json` atomically and return what was written."""
    manifest = {
        "stage": stage,
        "complete": complete,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config,
        "config_hash": json_hash(config),
        "inputs": inputs or {},
        "outputs": outputs or {},
        "failures": failures or [],
        "versions": package_versions(),
        **extra,
    }
    atomic_write_json(Path(folder) / MANIFEST, manifest)
    return manifest


def read_json(path: str | Path) -> Any:
    """A JSON file's contents; an unreadable or malformed file is a DataError naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not readable JSON ({err})") from None


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read `folder/manifest.json`; a missing or unreadable one is a DataError naming it."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no manifest here (was this stage run to completion?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: manifest is not readable JSON ({err})") from None


def manifest_hash(folder: str | Path) -> str:
    """The identity of an artifact: hash of its manifest's config, inputs and outputs."""
    manifest = read_manifest(folder)
    return json_hash({k: manifest.get(k) for k in ("stage", "config", "inputs", "outputs")})


def verify_outputs(folder: str | Path) -> None:
    """Check that each file the manifest lists with a SHA-256 still has it; a DataError names the one that changed."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for name, recorded in manifest.get("outputs", {}).items():
        if not (
            isinstance(recorded, str)
            and len(recorded) == 64
            and all(c in "0123456789abcdef" for c in recorded)
        ):
            continue  # a count or a note, not a file hash
        path = folder / name
        stage = manifest.get("stage", "?")
        if not path.is_file():
            raise DataError(
                f"{path}: listed in {folder / MANIFEST} but missing; run the '{stage}' stage again"
            )
        found = file_sha256(path)
        if found != recorded:
            raise DataError(
                f"{path}: does not match its manifest ({folder / MANIFEST} records sha256 {recorded[:12]}..., "
                f"the file has {found[:12]}...); it changed after the '{stage}' stage wrote it: run that stage again"
            )


def is_complete(
    folder: str | Path, config: dict[str, Any] | None = None, inputs: dict[str, str] | None = None
) -> bool:
    """True when `folder` holds a complete manifest matching `config` and `inputs` (when given)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return False
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if not manifest.get("complete"):
        return False
    if config is not None and manifest.get("config_hash") != json_hash(config):
        return False
    return inputs is None or manifest.get("inputs") == inputs


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed), so parallel workers build once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def cache_root() -> Path:
    """Where cached artifacts live: $VBERT_CACHE, else ~/.cache/vbert."""
    env = os.environ.get("VBERT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vbert"


def cached_folder(name: str, key: dict[str, Any], root: str | Path | None = None) -> Path:
    """The folder `cached_stage` keeps stage `name` under `key` in (built or not)."""
    return (Path(root) if root is not None else cache_root()) / f"{name}-{json_hash(key)[:12]}"


def cached_stage(
    name: str, key: dict[str, Any], build: Callable[[Path], None], root: str | Path | None = None
) -> Path:
    """Return the folder for stage `name` under `key`, calling `build(folder)` unless it is complete.

    `build` must finish by writing a complete manifest into the folder. A file lock makes
    concurrent callers (pytest-xdist workers, two notebooks) wait for one build.
    """
    folder = cached_folder(name, key, root)
    root = folder.parent
    if is_complete(folder):
        return folder
    with file_lock(root / f".{folder.name}.lock"):
        if not is_complete(folder):
            folder.mkdir(parents=True, exist_ok=True)
            build(folder)
            if not is_complete(folder):
                raise DataError(f"{folder}: stage '{name}' finished without writing a complete manifest")
    return folder
