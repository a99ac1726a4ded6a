"""Attention written out, for reading: softmax(Q K^T / sqrt(d_k)) V, masks, and multiple heads.

This is the teaching version (notebook 01). `vbert.bert.model.SelfAttention` computes the same thing
with one fused QKV projection and PyTorch's fused kernel; the tests check that both agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k) + mask) v, step by step -> (output [..., Lq, dv], weights [..., Lq, Lk]).

    q [..., Lq, dk], k [..., Lk, dk], v [..., Lk, dv]. `mask` broadcasts to [..., Lq, Lk]: bool
    (True = may attend, as in PyTorch's SDPA) or float (added to the scores, -inf blocks).
    """
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # [..., Lq, Lk]: how well each query matches each key
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = scores.softmax(dim=-1)  # [..., Lq, Lk]: each row sums to 1
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # [..., Lq, dv]: a weighted average of the values


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, L, H] -> [B, num_heads, L, H / num_heads]: each head gets its own slice of the features."""
    batch, length, hidden = x.shape
    return x.view(batch, length, num_heads, hidden // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, nh, L, hd] -> [B, L, nh * hd]: the heads' outputs side by side."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with separate query/key/value projections (the textbook layout)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_size % num_heads != 0:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None = None, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x [B, L, H], key_mask [B, L] (1 = real token) -> [B, L, H] (and weights [B, nh, L, L])."""
        q = split_heads(self.query(x), self.num_heads)  # [B, nh, L, hd]
        k = split_heads(self.key(x), self.num_heads)
        v = split_heads(self.value(x), self.num_heads)
        mask = None if key_mask is None else key_mask.bool()[:, None, None, :]  # [B, 1, 1, L]
        y, weights = scaled_dot_product_attention(q, k, v, mask, self.dropout if self.training else 0.0)
        y = self.out(merge_heads(y))  # [B, L, H]: mix what the heads found
        return (y, weights) if return_weights else y

    @torch.no_grad()
    def load_fused(self, fused_qkv: nn.Linear, out: nn.Linear) -> MultiHeadAttention:
        """Copy weights from a fused [3H, H] QKV projection (vbert.bert.model.SelfAttention) into q, k, v."""
        for part, layer in zip(fused_qkv.weight.chunk(3), (self.query, self.key, self.value), strict=True):
            layer.weight.copy_(part)
        for part, layer in zip(fused_qkv.bias.chunk(3), (self.query, self.key, self.value), strict=True):
            layer.bias.copy_(part)
        self.out.load_state_dict(out.state_dict())
        return self
