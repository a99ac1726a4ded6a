"""Progress bars that stay quiet under CI, in tests and when $VBERT_QUIET is set."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def quiet() -> bool:
    """True when progress bars should be hidden (CI=true, VBERT_QUIET=1, or under pytest)."""
    flags = (os.environ.get("CI", ""), os.environ.get("VBERT_QUIET", ""))
    return any(f.lower() in ("1", "true", "yes") for f in flags) or "PYTEST_CURRENT_TEST" in os.environ


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar over `iterable` that is disabled when `quiet()`."""
    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
