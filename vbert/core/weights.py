"""Weight files, read safely: safetensors, or PyTorch files through `torch.load(weights_only=True)`.

Every weight file vbert reads (extractor weights, BERT checkpoints, training checkpoints) comes
through here, so none can run code on loading, and a corrupt, truncated or foreign file is a
`DataError` naming it instead of an unpickling traceback. Files with metadata of several keys are
written here too (`write_safetensors`), the same bytes for the same contents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from vbert.core.manifest import atomic_write_bytes
from vbert.errors import DataError


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file's bytes, the same for the same tensors and metadata: its header's keys sorted.

    safetensors writes the metadata's keys in an order that changes from call to call, so two writes
    of one vocabulary would otherwise differ (and so would their SHA-256 in a manifest).
    """
    raw = save(tensors, metadata=metadata)
    size = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data stays 8-byte aligned, as safetensors writes it
    return len(header).to_bytes(8, "little") + header + raw[8 + size :]


def write_safetensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write `tensors` and string `metadata` as a safetensors file, atomically and reproducibly."""
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata))


def read_torch_file(
    path: str | Path, what: str = "weight file", map_location: str | torch.device = "cpu"
) -> Any:
    """The contents of a PyTorch file (tensors and plain containers only); a broken file is a DataError."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same to the user
        # torch's own message suggests weights_only=False, which would run code from the file: keep its cause only
        detail = str(err).strip().splitlines()
        cause = next(
            (
                line
                for line in reversed(detail)
                if line.strip()
                and "weights_only" not in line
                and "torch.load" not in line
                and "documentation" not in line
            ),
            "",
        )
        raise DataError(
            f"{path}: corrupt, truncated or not a {what} ({type(err).__name__}"
            f"{': ' + cause.strip() if cause else ''})"
        ) from None


def load_state_dict(path: str | Path, unwrap: bool = False) -> dict[str, torch.Tensor]:
    """A state dict (name -> finite tensor) from a .safetensors or PyTorch weight file.

    With `unwrap`, a dict that wraps the state dict under "state_dict" or "model" is opened, and the
    "module." prefix of DistributedDataParallel is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: weight file not found")
    if path.suffix == ".safetensors":
        try:
            state: Any = load_file(str(path), device="cpu")
        except Exception as err:  # noqa: BLE001 - corrupt or foreign files raise many different types
            raise DataError(
                f"{path}: corrupt, truncated or not a weight file ({type(err).__name__}: {err})"
            ) from None
    else:
        state = read_torch_file(path)
    if unwrap:
        for key in ("state_dict", "model"):  # common wrappers around a state dict
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict):
        raise DataError(
            f"{path}: expected a state dict (parameter name -> tensor), got {type(state).__name__}"
        )
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise DataError(f"{path}: {name} is a {type(value).__name__}, not a tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise DataError(f"{path}: {name} holds NaN or infinite values")
    return {k.removeprefix("module."): v for k, v in state.items()} if unwrap else state


def load_matching(
    network: nn.Module, state: dict[str, torch.Tensor], source: str, prefixes: tuple[str, ...]
) -> None:
    """Copy every parameter under `prefixes` from `state` into `network`; anything missing is a DataError."""
    own = {k: v for k, v in network.state_dict().items() if k.startswith(prefixes)}
    missing = [k for k in own if k not in state]
    if missing:
        raise DataError(
            f"{source}: {len(missing)} of {len(own)} parameters missing (first: {missing[0]}); "
            "is this a checkpoint for this architecture?"
        )
    wrong = [(k, list(state[k].shape), list(v.shape)) for k, v in own.items() if state[k].shape != v.shape]
    if wrong:
        k, got, want = wrong[0]
        raise DataError(f"{source}: parameter {k} has shape {got}, expected {want} ({len(wrong)} mismatched)")
    network.load_state_dict({k: state[k] for k in own}, strict=False)
