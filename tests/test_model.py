"""The vbert BERT encoder: shapes, masked-only MLM loss, padding, init, resizing, compile, autocast."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from vbert.bert.masking import mask_tokens, predicted_positions
from vbert.bert.model import IGNORE_INDEX, BertConfig, BertForMaskedLM, BertModel, flops_per_token
from vbert.config import load_config

TINY = BertConfig(
    vocab_size=97, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position_embeddings=24
)


def _batch(
    batch: int = 3, length: int = 12, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, TINY.vocab_size, (batch, length), generator=gen)  # [B, L]
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    masked, labels = mask_tokens(ids, special, 4, (5, TINY.vocab_size), mask_prob=0.3, generator=gen)
    labels[0, 1] = ids[0, 1]  # at least one prediction
    return masked, labels, ids


def _model(seed: int = 0, **changes: object) -> BertForMaskedLM:
    torch.manual_seed(seed)
    return BertForMaskedLM(dataclasses.replace(TINY, **changes)).eval()


def test_shapes_and_pool() -> None:
    model = _model()
    ids, labels, _ = _batch()
    out = model(ids, labels=labels)
    n = int((labels != IGNORE_INDEX).sum())
    assert out.hidden.shape == (3, 12, 32)
    assert out.logits.shape == (n, TINY.vocab_size)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    pooled = model.bert.pool(out.hidden)
    assert pooled.shape == (3, 32) and pooled.abs().max() <= 1.0
    assert torch.equal(pooled, torch.tanh(model.bert.pooler(out.hidden[:, 0])))


def test_masked_only_loss_equals_loss_over_full_logits() -> None:
    model = _model()
    ids, labels, _ = _batch()
    out = model(ids, labels=labels)
    full = model(ids).logits  # [B, L, V]
    assert full.shape == (3, 12, TINY.vocab_size)
    expected = F.cross_entropy(
        full.reshape(-1, TINY.vocab_size), labels.reshape(-1), ignore_index=IGNORE_INDEX
    )
    torch.testing.assert_close(out.loss, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.logits, full[labels != IGNORE_INDEX], rtol=0, atol=1e-6)


def test_static_positions_give_the_same_loss() -> None:
    model = _model()
    ids, labels, _ = _batch()
    positions, targets = predicted_positions(labels, capacity=30)  # padded with ignored slots
    assert positions.shape == (30,)
    out = model(ids, labels=targets, positions=positions)
    torch.testing.assert_close(out.loss, model(ids, labels=labels).loss, rtol=0, atol=1e-6)


def test_padding_does_not_change_real_tokens() -> None:
    model = _model()
    ids = torch.randint(5, TINY.vocab_size, (1, 7))
    alone = model.bert(ids)  # [1, 7, H], no mask at all
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)  # [1, 12]
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 5)], dim=1).long()
    with_pad = model.bert(padded, attention_mask=mask)
    torch.testing.assert_close(with_pad[:, :7], alone, rtol=0, atol=1e-5)
    no_mask = model.bert(padded)  # attending to padding changes the result
    assert (no_mask[:, :7] - alone).abs().max() > 1e-4
    torch.testing.assert_close(model.bert(ids, attention_mask=torch.ones_like(ids)), alone, rtol=0, atol=1e-6)


def test_token_types_matter_and_default_to_zero() -> None:
    model = _model()
    ids = torch.randint(5, TINY.vocab_size, (2, 6))
    zeros = torch.zeros_like(ids)
    torch.testing.assert_close(model.bert(ids), model.bert(ids, token_type_ids=zeros), rtol=0, atol=1e-6)
    assert (model.bert(ids, token_type_ids=torch.ones_like(ids)) - model.bert(ids)).abs().max() > 1e-3


def test_dropout_is_configurable() -> None:
    ids, labels, _ = _batch()
    model = _model().train()
    assert model(ids, labels=labels).loss != model(ids, labels=labels).loss  # dropout active
    quiet = _model(hidden_dropout=0.0, attention_dropout=0.0).train()
    assert quiet(ids, labels=labels).loss == quiet(ids, labels=labels).loss
    torch.testing.assert_close(quiet(ids, labels=labels).loss, quiet.eval()(ids, labels=labels).loss)


def test_bert_initialisation() -> None:
    model = BertForMaskedLM(dataclasses.replace(TINY, vocab_size=4000, hidden_size=64, num_heads=4))
    words = model.bert.embeddings.word_embeddings.weight
    assert torch.all(words[0] == 0)  # the [PAD] row
    assert abs(words[1:].std().item() - 0.02) < 0.002
    assert abs(model.bert.layers[0].ffn_in.weight.std().item() - 0.02) < 0.002
    assert torch.all(model.bert.layers[0].ffn_in.bias == 0)
    assert torch.all(model.bert.layers[0].ffn_norm.weight == 1)
    assert torch.all(model.mlm.bias == 0)


def test_decoder_is_tied_to_word_embeddings() -> None:
    model = _model()
    ids, labels, _ = _batch()
    model(ids, labels=labels).loss.backward()
    grad = model.bert.embeddings.word_embeddings.weight.grad
    assert grad is not None and grad[labels[labels != IGNORE_INDEX]].abs().sum() > 0
    names = [n for n, _ in model.named_parameters()]
    assert not any("decoder" in n for n in names)  # no separate output matrix


def test_resize_token_embeddings_appends_rows() -> None:
    model = _model()
    ids, labels, _ = _batch()
    before = model(ids, labels=labels)
    rows = torch.randn(5, 32)
    model.resize_token_embeddings(TINY.vocab_size + 5, init_rows=rows)
    assert model.config.vocab_size == TINY.vocab_size + 5
    table = model.bert.embeddings.word_embeddings.weight
    assert table.shape == (TINY.vocab_size + 5, 32) and torch.equal(table[-5:], rows)
    after = model(ids, labels=labels)
    assert after.logits.shape[1] == TINY.vocab_size + 5
    torch.testing.assert_close(after.hidden, before.hidden, rtol=0, atol=0)
    torch.testing.assert_close(after.logits[:, : TINY.vocab_size], before.logits, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="only appends"):
        model.resize_token_embeddings(10)
    with pytest.raises(ValueError, match="init_rows"):
        model.resize_token_embeddings(TINY.vocab_size + 8, init_rows=torch.zeros(2, 32))


def test_config_from_preset_and_head_check() -> None:
    cfg = load_config("tiny")
    bert = BertConfig.from_model_config(cfg.model, vocab_size=123)
    assert (bert.hidden_size, bert.num_layers, bert.vocab_size) == (
        cfg.model.hidden_size,
        cfg.model.num_layers,
        123,
    )
    with pytest.raises(ValueError, match="multiple of num_heads"):
        BertConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings 24"):
        BertModel(TINY)(torch.zeros(1, 25, dtype=torch.long))


def test_flops_per_token_counts_the_encoder_matmuls() -> None:
    model = BertModel(TINY)
    matmul = sum(p.numel() for n, p in model.layers.named_parameters() if p.dim() == 2)
    expected = (
        6 * matmul
        + 12 * TINY.num_layers * TINY.hidden_size * 16
        + 0.9 * TINY.hidden_size * (TINY.hidden_size + TINY.vocab_size)
    )
    assert flops_per_token(TINY, seq_len=16, predicted_fraction=0.15) == pytest.approx(expected)


def test_compiles_without_graph_breaks() -> None:
    model = _model()
    ids, labels, _ = _batch()
    positions, targets = predicted_positions(labels, capacity=30)
    explained = torch._dynamo.explain(model)(
        ids, attention_mask=torch.ones_like(ids), labels=targets, positions=positions
    )
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(ids, labels=targets, positions=positions)
    out.loss.backward()
    torch.testing.assert_close(out.loss, model(ids, labels=labels).loss, rtol=0, atol=1e-5)
    assert model.bert.layers[0].attention.qkv.weight.grad is not None


def test_bf16_autocast_runs_and_stays_close() -> None:
    model = _model()
    ids, labels, _ = _batch()
    reference = model(ids, labels=labels).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, labels=labels)
    assert out.logits.dtype == torch.bfloat16  # the matrix multiplications ran in bf16
    assert out.hidden.dtype == torch.float32  # the residual stream leaves through autocast's fp32 LayerNorm
    assert out.loss.dtype == torch.float32  # cross-entropy runs in fp32 under autocast
    assert out.loss.item() != reference.item()  # bf16 rounding shows (measured difference: 1.6e-4)
    assert abs(out.loss.item() - reference.item()) < 0.05


def test_low_precision_residual_keeps_the_stream_in_bf16_under_autocast() -> None:
    plain, fast = _model(), _model(low_precision_residual=True)  # same seed: the same weights
    ids, labels, _ = _batch()
    assert torch.equal(
        plain(ids, labels=labels).loss, fast(ids, labels=labels).loss
    )  # no autocast: no change
    with torch.autocast("cpu", dtype=torch.bfloat16):
        slow_out, fast_out = plain(ids, labels=labels), fast(ids, labels=labels)
    assert slow_out.hidden.dtype == torch.float32  # autocast's LayerNorm gives fp32
    assert fast_out.hidden.dtype == torch.bfloat16
    assert fast_out.loss.dtype == torch.float32
    # only the rounding of the stream differs: bf16 keeps 8 bits, so about 1% of unit-scale values
    assert (fast_out.hidden.float() - slow_out.hidden).abs().max() < 0.1
    assert abs(fast_out.loss.item() - slow_out.loss.item()) < 0.05


def test_low_precision_residual_compiles_as_one_graph_under_autocast() -> None:
    model = _model(low_precision_residual=True)
    ids, labels, _ = _batch()
    positions, targets = predicted_positions(labels, capacity=30)
    torch._dynamo.reset()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        explained = torch._dynamo.explain(model)(ids, labels=targets, positions=positions)
        assert explained.graph_break_count == 0 and explained.graph_count == 1  # the autocast query traces
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        out = compiled(ids, labels=targets, positions=positions)
        eager = model(ids, labels=targets, positions=positions)
    assert out.hidden.dtype == torch.bfloat16
    torch.testing.assert_close(out.loss, eager.loss, rtol=0, atol=1e-3)
    torch._dynamo.reset()
