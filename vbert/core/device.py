"""Device selection and seeding, shared by every stage."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from vbert.errors import VbertError


def select_device(requested: str | None = None) -> torch.device:
    """Pick a device: `requested`, else $VBERT_DEVICE, else CUDA when present, else CPU.

    Apple's MPS is used only when asked for by name; asking for a device that is not
    available is an error rather than a silent fallback.
    """
    name = (requested or os.environ.get("VBERT_DEVICE") or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VbertError(f"device '{name}' was asked for, but PyTorch sees no CUDA GPU")
        return torch.device(name)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise VbertError("device 'mps' was asked for, but Apple MPS is not available")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise VbertError(f"unknown device '{name}': expected auto, cpu, cuda, cuda:N or mps")


def usable_cpus() -> int:
    """The CPU cores this process may run on (its affinity: taskset, a container's cpuset), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and PyTorch (all devices); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def describe_device(device: torch.device) -> str:
    """A short human description, e.g. 'cpu (2 threads)' or 'cuda:0 (NVIDIA H100)'."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
