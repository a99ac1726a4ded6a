"""The BERT encoder VideoBERT trains with: embeddings, post-LN transformer layers, pooler, MLM head.

One readable implementation, written for speed:

- one fused query/key/value projection per layer ([H] -> [3H]);
- `torch.nn.functional.scaled_dot_product_attention`, given no mask at all when the batch has no
  padding (so the flash kernel applies) and a boolean key-padding mask otherwise;
- the MLM head runs only on the positions that are predicted ([N, H] -> [N, V]), never on [B, L, V];
- no data-dependent Python control flow, so `torch.compile(fullgraph=True)` traces it whole.

Parameter names follow `transformers`' BertModel closely enough that `vbert.bert.hf` converts
checkpoints both ways (the fused QKV weight is split/concatenated there).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vbert.config import EncoderSizes

IGNORE_INDEX = -100  # label of positions that are not predicted (PyTorch's cross-entropy default)


@dataclass
class BertConfig(EncoderSizes):
    """A built encoder's sizes (the config's `EncoderSizes` fields), its vocabulary size and init."""

    vocab_size: int = 30522
    pad_token_id: int = 0
    initializer_range: float = 0.02  # BERT's init: weights ~ N(0, 0.02)

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"
            )

    @classmethod
    def from_model_config(cls, model_cfg: EncoderSizes, vocab_size: int) -> BertConfig:
        """Build from the config's `model` section (its `EncoderSizes` fields) and the vocabulary size."""
        return cls(
            vocab_size=vocab_size, **{f.name: getattr(model_cfg, f.name) for f in fields(EncoderSizes)}
        )

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_heads


def to_autocast_dtype(x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """x cast to the autocast dtype of its device when autocast is on (and `enabled`); else x."""
    kind = x.device.type
    if enabled and torch.is_autocast_enabled(kind):
        return x.to(torch.get_autocast_dtype(kind))
    return x


class Embeddings(nn.Module):
    """word + position + token type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, hidden, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, hidden)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, hidden)
        self.norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.low_precision_residual = config.low_precision_residual

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L] ids -> [B, L, H] embeddings."""
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"sequence length {length} exceeds max_position_embeddings "
                f"{self.position_embeddings.num_embeddings}"
            )
        positions = torch.arange(length, device=input_ids.device)  # [L]
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)  # [B, L, H]
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]  # all segment 0, no [B, L] zeros tensor
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(to_autocast_dtype(self.norm(x), self.low_precision_residual))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection and PyTorch's fused kernel."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)  # rows: [query; key; value]
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_dropout

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, L, H], key_mask [B, 1, 1, L] bool (True = attend) or None -> [B, L, H]."""
        batch, length, hidden = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, hidden // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, nh, L, hd]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask, dropout_p=self.dropout_p if self.training else 0.0
        )  # [B, nh, L, hd]
        y = y.transpose(1, 2).reshape(batch, length, hidden)  # [B, L, H]
        return self.out(y)


class EncoderLayer(nn.Module):
    """One post-LayerNorm transformer layer, as in BERT: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.low_precision_residual = config.low_precision_residual

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L, H] -> [B, L, H]."""
        x = self.attention_norm(x + self.dropout(self.attention(x, key_mask)))
        x = to_autocast_dtype(x, self.low_precision_residual)
        h = F.gelu(self.ffn_in(x))  # exact (erf) GELU, as BERT's "gelu"; [B, L, I]
        return to_autocast_dtype(
            self.ffn_norm(x + self.dropout(self.ffn_out(h))), self.low_precision_residual
        )


def key_padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """[B, L] (1 = real token, 0 = padding) -> [B, 1, 1, L] bool for SDPA, or None for no padding."""
    if attention_mask is None:
        return None
    return attention_mask.bool()[:, None, None, :]


class BertModel(nn.Module):
    """The BERT encoder: ids -> contextual hidden states; `.pool` gives the [CLS] summary."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids [B, L] -> hidden [B, L, H]. Pass attention_mask=None when nothing is padded."""
        mask = key_padding_mask(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)  # [B, L, H]
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """BERT's pooler: tanh(W h_[CLS] + b); hidden [B, L, H] -> [B, H]."""
        return torch.tanh(self.pooler(hidden[:, 0]))

    def num_parameters(self, embeddings: bool = True) -> int:
        """Parameter count, optionally without the embedding tables."""
        total = sum(p.numel() for p in self.parameters())
        if not embeddings:
            total -= sum(p.numel() for p in self.embeddings.parameters() if p.dim() == 2)
        return total


class MaskedLMOutput(NamedTuple):
    """What BertForMaskedLM returns (a NamedTuple, so compiled graphs return it as is)."""

    loss: torch.Tensor | None  # [] mean cross-entropy over predicted positions, None without labels
    logits: torch.Tensor  # [N, V] at the predicted positions ([B, L, V] when no labels are given)
    hidden: torch.Tensor  # [B, L, H] encoder output


class MLMHead(nn.Module):
    """BERT's prediction head: dense + GELU + LayerNorm, then the decoder tied to the word embeddings."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """h [..., H], word_embeddings [V, H] -> logits [..., V]."""
        h = self.norm(F.gelu(self.dense(h)))
        return F.linear(h, word_embeddings, self.bias)


def gather_predicted(
    hidden: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the rows to predict: -> (h [N, H], targets [N]).

    Either labels [B, L] with IGNORE_INDEX where nothing is predicted (N is then data dependent),
    or `positions` [N] (flat indices into B*L) with labels [N]; the latter keeps shapes static
    (pad with IGNORE_INDEX labels) for CUDA graphs and avoids a host sync.
    """
    flat = hidden.reshape(-1, hidden.shape[-1])  # [B*L, H]
    if positions is None:
        labels = labels.reshape(-1)  # [B*L]
        positions = (labels != IGNORE_INDEX).nonzero().squeeze(1)  # [N]
        return flat[positions], labels[positions]
    return flat[positions], labels


class BertForMaskedLM(nn.Module):
    """BERT encoder + MLM head; the head sees only the predicted positions."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm = MLMHead(config)
        self.mlm.apply(self.bert._init_weights)

    def mlm_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits for any hidden states h [..., H] -> [..., V]."""
        return self.mlm(h, self.bert.embeddings.word_embeddings.weight)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> MaskedLMOutput:
        """MLM loss and logits at the predicted positions (see `gather_predicted` for labels/positions).

        Without labels, logits cover every position ([B, L, V]): for inference only.
        """
        hidden = self.bert(input_ids, token_type_ids, attention_mask)  # [B, L, H]
        if labels is None:
            return MaskedLMOutput(None, self.mlm_logits(hidden), hidden)
        h, targets = gather_predicted(hidden, labels, positions)  # [N, H], [N]
        logits = self.mlm_logits(h)  # [N, V]
        loss = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX)
        return MaskedLMOutput(loss, logits, hidden)

    @torch.no_grad()
    def resize_token_embeddings(self, new_size: int, init_rows: torch.Tensor | None = None) -> None:
        """Append rows to the tied word embeddings and MLM bias (init_rows [new - old, H] or N(0, 0.02))."""
        old = self.bert.embeddings.word_embeddings
        old_size, hidden = old.weight.shape
        if new_size < old_size:
            raise ValueError(f"resize_token_embeddings only appends rows: {new_size} < {old_size}")
        extra = new_size - old_size
        if init_rows is None:
            init_rows = torch.randn(extra, hidden) * self.config.initializer_range
        if tuple(init_rows.shape) != (extra, hidden):
            raise ValueError(f"init_rows has shape {tuple(init_rows.shape)}, expected {(extra, hidden)}")
        table = nn.Embedding(
            new_size, hidden, padding_idx=old.padding_idx, device=old.weight.device, dtype=old.weight.dtype
        )
        table.weight.copy_(torch.cat([old.weight, init_rows.to(old.weight)]))
        self.bert.embeddings.word_embeddings = table
        bias = torch.cat([self.mlm.bias, self.mlm.bias.new_zeros(extra)])
        self.mlm.bias = nn.Parameter(bias)
        self.config.vocab_size = new_size
        self.bert.config.vocab_size = new_size


def flops_per_token(config: BertConfig, seq_len: int, predicted_fraction: float = 0.15) -> float:
    """Useful training FLOPs per token: 6 x encoder matmul params + attention + the masked-only head."""
    h, layers = config.hidden_size, config.num_layers
    matmul_params = layers * (4 * h * h + 2 * h * config.intermediate_size)
    attention = 12 * layers * h * seq_len
    head = 6 * predicted_fraction * (h * h + h * config.vocab_size)
    return 6 * matmul_params + attention + head
