"""The optimisation pieces of the trainer: learning-rate schedule, AdamW groups, autocast precision."""

from __future__ import annotations

import math

import torch
from torch import nn


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the peak learning rate: linear warmup, then linear or cosine decay to zero."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress_frac = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress_frac))
    return 1.0 - progress_frac


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW with decay on weight matrices only (not biases, LayerNorms); fused kernels on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6, **fused)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`: bf16 on CUDA under 'auto', None means fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" else None
