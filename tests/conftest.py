"""Shared test settings: quiet progress bars, the tests' own artifact cache, the CPU, one thread per worker.

Every test module runs with `VBERT_CACHE` set to a cache of the test session's own (never the
`runs/cache` that `make test` exports for the notebooks, which may hold artifacts built by older code)
and with `VBERT_DEVICE=cpu`: many tests compare results exactly (a resumed run against an
uninterrupted one, byte for byte), which holds on the CPU's deterministic fp32 kernels and not for
bf16 autocast or CUDA's nondeterministic reductions. Tests of the GPU paths name the device
themselves and are skipped, with their reason printed, where there is none. Both variables are set
per test module, not per process, so the notebooks that nbval executes in the same workers keep
the environment `make test` gave them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

os.environ.setdefault("VBERT_QUIET", "1")
torch.set_num_threads(1)


def tests_cache(factory: pytest.TempPathFactory) -> Path:
    """This test session's artifact cache, shared by its xdist workers (a file lock guards each entry)."""
    base = factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return shared / "vbert-cache"


@pytest.fixture(scope="module", autouse=True)
def _tests_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test module (and its module fixtures): the tests' own cache and the CPU."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VBERT_CACHE", str(tests_cache(tmp_path_factory)))
        patch.setenv("VBERT_DEVICE", "cpu")
        yield
