"""Device selection, seeding, manifests, the stage cache and progress bars."""

from __future__ import annotations

import fcntl
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from vbert.config import Config, load_config
from vbert.core import manifest, stages
from vbert.core.device import seed_everything, select_device
from vbert.errors import DataError, VbertError


def test_auto_device_falls_back_to_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VBERT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device().type == "cpu"
    assert select_device("auto").type == "cpu"


def test_auto_device_prefers_cuda_and_never_picks_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VBERT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device().type == "cpu"


def test_asking_for_missing_devices_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(VbertError, match="no CUDA GPU"):
        select_device("cuda")
    with pytest.raises(VbertError, match="unknown device"):
        select_device("tpu")


def test_environment_variable_selects_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBERT_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device().type == "cpu"


def test_seeding_makes_python_numpy_and_torch_reproducible() -> None:
    import random

    def draw() -> tuple:
        return random.random(), float(np.random.rand()), torch.randn(3).tolist()

    seed_everything(123)
    first = draw()
    seed_everything(123)
    assert draw() == first
    seed_everything(124)
    assert draw() != first


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.json"
    manifest.atomic_write_json(target, {"x": 1})
    manifest.atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_manifest_completeness_tracks_config_and_inputs(tmp_path: Path) -> None:
    assert not manifest.is_complete(tmp_path)
    manifest.write_manifest(tmp_path, "demo", {"k": 1}, inputs={"x": "abc"}, complete=False)
    assert not manifest.is_complete(tmp_path)
    manifest.write_manifest(tmp_path, "demo", {"k": 1}, inputs={"x": "abc"})
    assert manifest.is_complete(tmp_path, {"k": 1}, {"x": "abc"})
    assert not manifest.is_complete(tmp_path, {"k": 2})
    assert not manifest.is_complete(tmp_path, {"k": 1}, {"x": "changed"})
    assert manifest.read_manifest(tmp_path)["versions"]["torch"] == torch.__version__


def test_read_manifest_names_the_broken_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no manifest"):
        manifest.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"manifest\.json: manifest is not readable JSON"):
        manifest.read_manifest(tmp_path)


def test_cached_stage_builds_once_when_a_second_caller_arrives_during_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two callers, ordered by events rather than by luck: the second arrives while the first is inside
    its build, and the first finishes only once the second is blocked on the lock (or, were there no
    lock, has started a build of its own). Either way the outcome is decided before the first goes on."""
    real_flock = fcntl.flock
    seen: list[str] = []  # "building" (first caller), then "waiting" (second, on the lock) or "second build"
    changed = threading.Condition()
    release = threading.Event()
    calls: list[Path] = []

    def note(event: str) -> None:
        with changed:
            seen.append(event)
            changed.notify_all()

    def flock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX:  # try first without blocking, to see whether it would block
            try:
                return real_flock(fd, operation | fcntl.LOCK_NB)
            except BlockingIOError:
                note("waiting")
        return real_flock(fd, operation)

    def build(folder: Path) -> None:
        calls.append(folder)
        if len(calls) == 1:
            note("building")
            assert release.wait(timeout=60)
        else:
            note("second build")
        (folder / "out.txt").write_text("done", encoding="utf-8")
        manifest.write_manifest(folder, "demo", {"a": 1})

    def until(condition) -> None:
        with changed:
            assert changed.wait_for(condition, timeout=60), seen

    monkeypatch.setattr(fcntl, "flock", flock)
    first = threading.Thread(target=manifest.cached_stage, args=("demo", {"a": 1}, build, tmp_path))
    second = threading.Thread(target=manifest.cached_stage, args=("demo", {"a": 1}, build, tmp_path))
    first.start()
    until(lambda: "building" in seen)
    second.start()
    until(lambda: len(seen) == 2)
    release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert seen == ["building", "waiting"] and len(calls) == 1
    folder = manifest.cached_stage("demo", {"a": 1}, build, tmp_path)
    assert (folder / "out.txt").read_text(encoding="utf-8") == "done" and len(calls) == 1
    other = manifest.cached_stage("demo", {"a": 2}, build, tmp_path)
    assert other != folder and len(calls) == 2


def test_a_cached_artifact_is_built_again_when_the_code_that_built_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []

    def run(config: Config, inputs: dict[str, Path], out: Path, force: bool) -> dict:
        built.append(out.name.rsplit("-", 1)[0])
        manifest.write_manifest(out, out.name, {})
        return {}

    first = stages.Stage("first", "makes an artifact", run, code=("vbert.core.manifest",))
    second = stages.Stage("second", "reads it", run, needs=(first,), code=("vbert.core.run_folder",))
    config = load_config("tiny")
    folder = stages.Resolver(config, root=tmp_path).folder(second)
    assert stages.Resolver(config, root=tmp_path).folder(second) == folder and built == ["first", "second"]
    real = stages.code_digest
    # the code of "first" changes: it is built again, and so is "second", which read its artifact
    monkeypatch.setattr(
        stages, "code_digest", lambda names: real(names) + ("+" if names == first.code else "")
    )
    again = stages.Resolver(config, root=tmp_path).folder(second)
    assert again != folder and built == ["first", "second", "first", "second"]
    # the code of "second" alone changes: "first" is reused
    monkeypatch.setattr(
        stages, "code_digest", lambda names: real(names) + ("+" if names == second.code else "")
    )
    stages.Resolver(config, root=tmp_path).folder(second)
    assert built[4:] == ["second"]


def test_code_digest_follows_the_source_of_the_modules_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "digest_demo"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "inner" / "__init__.py").write_text("", encoding="utf-8")
    (package / "inner" / "step.py").write_text("X = 1\n", encoding="utf-8")
    (package / "other.py").write_text("Y = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    whole, module = stages.code_digest(("digest_demo",)), stages.code_digest(("digest_demo.other",))
    (package / "inner" / "step.py").write_text("X = 2\n", encoding="utf-8")  # a file deep in the package
    assert stages.code_digest(("digest_demo",)) != whole
    assert stages.code_digest(("digest_demo.other",)) == module  # a module names itself only
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        stages.code_digest(("no_such_module",))


def test_cached_stage_refuses_a_build_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="without writing a complete manifest"):
        manifest.cached_stage("broken", {}, lambda folder: None, tmp_path)


def test_progress_is_quiet_under_ci_in_tests_or_when_asked_and_shown_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vbert.core.progress import progress, quiet

    for name in ("CI", "VBERT_QUIET", "PYTEST_CURRENT_TEST"):  # as in a terminal outside any test
        monkeypatch.delenv(name, raising=False)
    assert not quiet() and not progress(range(3), file=io.StringIO()).disable
    monkeypatch.setenv("CI", "false")
    assert not quiet()
    for name, value in (("CI", "true"), ("CI", "1"), ("VBERT_QUIET", "yes"), ("PYTEST_CURRENT_TEST", "t")):
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            assert quiet() and progress(range(3), file=io.StringIO()).disable, (name, value)
