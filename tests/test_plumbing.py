"""Device selection, seeding, manifests, the stage cache and progress bars."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from vbert.core import manifest
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


def test_cached_stage_builds_once_even_when_called_concurrently(tmp_path: Path) -> None:
    calls = []

    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "out.txt").write_text("done", encoding="utf-8")
        manifest.write_manifest(folder, "demo", {"a": 1})

    threads = [
        threading.Thread(target=manifest.cached_stage, args=("demo", {"a": 1}, build, tmp_path))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    folder = manifest.cached_stage("demo", {"a": 1}, build, tmp_path)
    assert len(calls) == 1 and (folder / "out.txt").read_text() == "done"
    other = manifest.cached_stage("demo", {"a": 2}, build, tmp_path)
    assert other != folder and len(calls) == 2


def test_cached_stage_refuses_a_build_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="without writing a complete manifest"):
        manifest.cached_stage("broken", {}, lambda folder: None, tmp_path)


def test_progress_is_quiet_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from vbert.core.progress import progress, quiet

    monkeypatch.setenv("CI", "true")
    assert quiet() and progress(range(3)).disable
