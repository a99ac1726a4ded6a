"""The written-out attention equals PyTorch's fused SDPA and vbert's production SelfAttention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vbert.bert.attention import MultiHeadAttention, merge_heads, scaled_dot_product_attention, split_heads
from vbert.bert.model import BertConfig, SelfAttention, key_padding_mask


def _qkv(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 3, 7, 8, generator=gen) for _ in range(3))  # [B, nh, L, hd]


def test_matches_fused_sdpa_without_mask() -> None:
    q, k, v = _qkv()
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), rtol=0, atol=1e-6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 7), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["padding", "causal", "additive"])
def test_matches_fused_sdpa_with_masks(kind: str) -> None:
    q, k, v = _qkv(1)
    if kind == "padding":
        mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
        mask[1, ..., 4:] = False  # the second sequence has 3 padding tokens
    elif kind == "causal":
        mask = torch.ones(7, 7, dtype=torch.bool).tril()
    else:
        mask = torch.randn(2, 1, 7, 7)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=0, atol=1e-6
    )
    if mask.dtype == torch.bool:
        assert torch.all(weights.masked_select(~mask.expand_as(weights)) == 0)


def test_formula_by_hand_on_one_query() -> None:
    q = torch.tensor([[1.0, 0.0]])  # one query, d_k = 2
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[10.0], [20.0]])
    out, weights = scaled_dot_product_attention(q, k, v)
    a = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)  # softmax of [1/sqrt2, 0]
    assert weights[0, 0].item() == pytest.approx(a, abs=1e-6)
    assert out.item() == pytest.approx(10 * a + 20 * (1 - a), abs=1e-5)


def test_split_and_merge_heads_are_inverse() -> None:
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    assert torch.equal(heads[:, 1], x[:, :, 4:8])  # head 1 sees features 4..7
    assert torch.equal(merge_heads(heads), x)


def test_multi_head_equals_production_self_attention() -> None:
    torch.manual_seed(0)
    config = BertConfig(hidden_size=16, num_heads=4, attention_dropout=0.0)
    fused = SelfAttention(config).eval()
    written = MultiHeadAttention(16, 4).eval().load_fused(fused.qkv, fused.out)
    x = torch.randn(3, 9, 16)
    attention_mask = torch.ones(3, 9, dtype=torch.long)
    attention_mask[2, 6:] = 0
    y, weights = written(x, attention_mask, return_weights=True)
    torch.testing.assert_close(y, fused(x, key_padding_mask(attention_mask)), rtol=0, atol=1e-6)
    torch.testing.assert_close(written(x), fused(x), rtol=0, atol=1e-6)
    assert weights.shape == (3, 4, 9, 9) and torch.all(weights[2, :, :, 6:] == 0)
    with pytest.raises(ValueError, match="multiple"):
        MultiHeadAttention(10, 3)
