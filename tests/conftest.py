"""Shared test settings: quiet progress bars, a private artifact cache, one thread per worker."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("VBERT_QUIET", "1")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unless a test sets its own, artifacts are cached in a folder shared by this test session."""
    if "VBERT_CACHE" not in os.environ:
        monkeypatch.setenv("VBERT_CACHE", str(tmp_path_factory.getbasetemp() / "vbert-cache"))
