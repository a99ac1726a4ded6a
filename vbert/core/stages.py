"""Stages, and the one resolver that builds what a stage needs.

A `Stage` names the folder its artifact lives in, the stages whose artifacts it reads (`needs`), the
settings that decide its artifact (`key`) and the code that makes it (`code`), and one entry point,
`run(config, inputs, out, force) -> summary`: it writes the artifact into `out` from the folders in
`inputs` (stage name -> folder), skips work its manifest shows finished unless `force`, and returns
a short summary for the report.

`resolve(stage, config)` gives the folder of a stage's artifact, building first, once each, every
artifact it needs:

- in the stage cache (`run_dir=None`, what notebooks, `vbert eval` and the CLI's defaults use): one
  folder per stage and key, where the key holds the stage's settings, the digest of its code and the
  keys of its inputs, so that other settings, other code or other inputs build anew;
- in a `vbert run` folder: one sub-folder per stage, with `pipeline.json` (`vbert.core.run_folder`)
  recording what each stage read, so that a stage whose inputs changed since it last ran runs again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from importlib import util
from pathlib import Path
from typing import Any

from vbert.config import Config
from vbert.core.manifest import MANIFEST, cached_stage, file_sha256, json_hash, verify_outputs
from vbert.core.run_folder import artifact_identity, read_state, write_state

# (config, {needed stage's name: its folder}, output folder, force) -> summary
StageRun = Callable[[Config, dict[str, Path], Path, bool], dict[str, Any]]


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: what it reads, what decides its artifact, and how it is made."""

    name: str
    description: str
    run: StageRun
    folder: str = ""  # its folder in a run folder ("" = the stage's name)
    needs: tuple[Stage, ...] = ()  # stages whose artifacts it reads
    key: Callable[[Config], dict[str, Any]] = lambda config: config.to_dict()  # what decides it
    code: tuple[str, ...] = ()  # packages or modules whose source makes it (hashed into the cache key)
    # True: the stage compares the identity of what it reads itself (and keeps finished parts made from
    # the same inputs), so changed inputs do not force it in a run folder; only --force does.
    checks_inputs: bool = False

    @property
    def out(self) -> str:
        """Folder name of this stage's artifact inside a run folder."""
        return self.folder or self.name


@dataclass
class StageResult:
    """What one stage reported, how long it took, and whether it ran or was already finished."""

    name: str
    seconds: float
    summary: dict[str, Any]
    status: str = "ran"  # "ran", "skipped" (finished earlier) or "rerun" (its inputs had changed)
    built_seconds: float | None = None  # time of the run that built a skipped stage's artifact
    changed: list[str] = field(default_factory=list)  # input folders that changed since the last run


def code_digest(names: tuple[str, ...]) -> str:
    """SHA-256 over the source files of the named packages or modules (paths and bytes, in order)."""
    digest = hashlib.sha256()
    for name in names:
        spec = util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"no module {name!r} to hash")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(f"{name}:{path.relative_to(origin.parent).as_posix()}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class Resolver:
    """Builds stages and what they need, each once, in the stage cache or in one run folder."""

    def __init__(
        self,
        config: Config,
        run_dir: str | Path | None = None,
        force: bool = False,
        only: Collection[str] | None = None,
        root: str | Path | None = None,
        given: dict[str, str | Path] | None = None,
    ) -> None:
        self.config = config
        self.given = {
            name: Path(folder) for name, folder in (given or {}).items()
        }  # stage name -> folder to use
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.force = force  # run folder: run the stages asked for again, even when finished
        self.only = set(only) if only is not None else None  # run folder: the stages that may run
        self.root = root  # cache root (default: $VBERT_CACHE, else ~/.cache/vbert)
        self.results: list[StageResult] = []  # the stages that ran or were checked, in order
        self._folders: dict[str, Path] = {}
        self._keys: dict[str, str] = {}
        self._state: dict[str, Any] | None = None

    def folder(self, stage: Stage) -> Path:
        """The folder of `stage`'s artifact, built (with everything it needs) when missing."""
        if stage.name in self.given:
            return self.given[stage.name]
        if stage.name not in self._folders:
            inputs = {need.name: self.folder(need) for need in stage.needs}
            if self.run_dir is None:
                self._folders[stage.name] = self._cached(stage, inputs)
            else:
                self._folders[stage.name] = self._in_run_folder(stage, inputs)
        return self._folders[stage.name]

    def cache_key(self, stage: Stage) -> dict[str, Any]:
        """What identifies a cached artifact: the stage, its settings, its code and its inputs' keys."""
        inputs = {}
        for need in stage.needs:
            if need.name in self.given:  # a folder made elsewhere: known by its manifest, else by its files
                self._keys[need.name] = json_hash({"given": folder_identity(self.given[need.name])})
            elif need.name not in self._keys:
                self._keys[need.name] = json_hash(self.cache_key(need))
            inputs[need.name] = self._keys[need.name]
        return {
            "stage": stage.name,
            "config": stage.key(self.config),
            "code": code_digest(stage.code),
            "inputs": inputs,
        }

    def _cached(self, stage: Stage, inputs: dict[str, Path]) -> Path:
        key = self.cache_key(stage)
        self._keys[stage.name] = json_hash(key)
        return cached_stage(
            stage.name, key, lambda out: stage.run(self.config, inputs, out, False), self.root
        )

    def _in_run_folder(self, stage: Stage, inputs: dict[str, Path]) -> Path:
        assert self.run_dir is not None
        out = self.run_dir / stage.out
        if self.only is not None and stage.name not in self.only:
            return out  # not asked for: read as it is
        if self._state is None:
            self._state = read_state(self.run_dir)
        for folder in inputs.values():  # a damaged or hand-edited artifact is refused, naming the file
            if (folder / MANIFEST).is_file():
                verify_outputs(folder)
        identities = input_identities(stage, inputs)
        record = self._state.get(stage.name)
        changed = sorted(
            k for k in identities if record is not None and record.get("inputs", {}).get(k) != identities[k]
        )
        if changed:
            print(
                f"[vbert run] {stage.name}: input(s) {', '.join(changed)} changed since it last ran; running "
                "again",
                flush=True,
            )
        before = artifact_identity(out)
        start = time.perf_counter()
        summary = stage.run(
            self.config, inputs, out, self.force or (bool(changed) and not stage.checks_inputs)
        )
        seconds = time.perf_counter() - start
        after = artifact_identity(out)
        skipped = before != "" and after == before  # its manifest was not rewritten: nothing ran
        if skipped and record is not None:
            summary = record.get("summary", summary)  # the numbers of the run that built it
        status = "skipped" if skipped else "rerun" if changed else "ran"
        built = record.get("seconds") if skipped and record is not None else None
        self._state[stage.name] = {
            "inputs": identities,
            "output": after,
            "seconds": built if built is not None else round(seconds, 2),
            "summary": summary,
        }
        write_state(self.run_dir, self._state)
        self.results.append(StageResult(stage.name, seconds, summary, status, built, changed))
        return out


def folder_identity(folder: Path) -> str:
    """Its manifest's identity (`artifact_identity`); a folder without one, the SHA-256 of each of its files."""
    if (folder / MANIFEST).is_file():
        return artifact_identity(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return json_hash({p.relative_to(folder).as_posix(): file_sha256(p) for p in files})


def input_identities(stage: Stage, inputs: dict[str, Path]) -> dict[str, str]:
    """Identity (manifest file hash) of each folder `stage` reads, keyed by the folder's name in a run."""
    return {need.out: artifact_identity(inputs[need.name]) for need in stage.needs}


def resolve(
    stage: Stage,
    config: Config,
    run_dir: str | Path | None = None,
    given: dict[str, str | Path] | None = None,
) -> Path:
    """The folder of `stage`'s artifact for `config`, in the stage cache or in `run_dir`, built when missing.

    `given` names folders made elsewhere for some of the stages it needs (stage name -> folder).
    """
    return Resolver(config, run_dir, given=given).folder(stage)
