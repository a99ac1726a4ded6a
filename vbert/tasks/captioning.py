"""Video captioning (the paper's Table 3): a transformer encoder-decoder over segment features.

The shapes, from the inputs to the word logits::

    inputs [B, S, D]  -> Linear + position -> vbert encoder layers -> memory [B, S, H]
    caption [B, T]    -> word + position   -> decoder layers (causal self-attention,
                                              cross-attention to memory, FFN) -> word logits

The encoder is built from `vbert.bert.model.EncoderLayer` (the same block VideoBERT uses); the decoder
layer is written here. The paper compares three inputs, all of which are a sequence of vectors:
clip features alone (one vector per clip), VideoBERT features (one vector: outputs at the video
tokens averaged, concatenated with outputs at the masked template slots averaged), and VideoBERT
plus the mean clip feature (one vector). Decoding is greedy or beam search.

Captions use a word-level vocabulary built from the training captions (words seen at least
`min_count` times; the rest are [UNK]), as the captioning papers the paper compares with do.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vbert.bert.model import BertConfig, EncoderLayer, key_padding_mask
from vbert.errors import VbertError
from vbert.tasks.caption_metrics import tokenize_caption

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")


@dataclass
class CaptionVocab:
    """Word-level caption vocabulary: ids 0-3 are [PAD], [BOS], [EOS], [UNK]."""

    words: list[str]

    @classmethod
    def build(cls, captions: Sequence[str], min_count: int = 1) -> CaptionVocab:
        """Words of the (tokenized) captions seen at least `min_count` times, most frequent first."""
        counts = Counter(w for c in captions for w in tokenize_caption(c).split())
        if not counts:
            raise VbertError("cannot build a caption vocabulary: every caption is empty")
        return cls(
            list(SPECIALS)
            + [w for w, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])) if n >= min_count]
        )

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str, max_len: int) -> list[int]:
        """[BOS] words [EOS], cut to `max_len` ids (the [EOS] is kept)."""
        ids = [self.index.get(w, UNK) for w in tokenize_caption(caption).split()][: max_len - 2]
        return [BOS, *ids, EOS]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> caption text, stopping at [EOS] and skipping [BOS]/[PAD]."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.words[i])
        return " ".join(out)


class CrossAttention(nn.Module):
    """Multi-head attention from decoder states (queries) to encoder memory (keys, values)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.q = nn.Linear(config.hidden_size, config.hidden_size)
        self.kv = nn.Linear(config.hidden_size, 2 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_dropout

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x [B, T, H], memory [B, S, H], memory_mask [B, 1, 1, S] bool or None -> [B, T, H]."""
        b, t, h = x.shape
        s = memory.shape[1]
        q = self.q(x).view(b, t, self.num_heads, -1).transpose(1, 2)  # [B, nh, T, hd]
        k, v = (
            self.kv(memory).view(b, s, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        )  # [B, nh, S, hd]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=memory_mask, dropout_p=self.dropout_p if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, h))


class CausalSelfAttention(nn.Module):
    """Masked self-attention: position t sees positions <= t."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, H] -> [B, T, H] (padding sits after [EOS], so a causal mask suffices)."""
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout_p if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, h))


class DecoderLayer(nn.Module):
    """Post-LN decoder layer: x = LN(x + SelfAttn(x)); x = LN(x + CrossAttn(x, mem)); x = LN(x + FFN(x))."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self_attention = CausalSelfAttention(config)
        self.self_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.cross_attention = CrossAttention(config)
        self.cross_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x [B, T, H], memory [B, S, H] -> [B, T, H]."""
        x = self.self_norm(x + self.dropout(self.self_attention(x)))
        x = self.cross_norm(x + self.dropout(self.cross_attention(x, memory, memory_mask)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))


class CaptionModel(nn.Module):
    """Encoder (vbert encoder layers over projected input vectors) + caption decoder."""

    def __init__(
        self, input_dim: int, vocab_size: int, config: BertConfig, decoder_layers: int | None = None
    ) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.input_proj = nn.Sequential(nn.Linear(input_dim, h), nn.LayerNorm(h, eps=config.layer_norm_eps))
        self.input_positions = nn.Embedding(config.max_position_embeddings, h)
        self.encoder = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))
        self.word_embeddings = nn.Embedding(vocab_size, h, padding_idx=PAD)
        self.word_positions = nn.Embedding(config.max_position_embeddings, h)
        self.word_norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.decoder = nn.ModuleList(DecoderLayer(config) for _ in range(decoder_layers or config.num_layers))
        self.dropout = nn.Dropout(config.hidden_dropout)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=config.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def encode(self, inputs: torch.Tensor, input_mask: torch.Tensor | None = None) -> torch.Tensor:
        """inputs [B, S, D], input_mask [B, S] (1 = real) -> memory [B, S, H]."""
        positions = torch.arange(inputs.shape[1], device=inputs.device)
        x = self.dropout(self.input_proj(inputs) + self.input_positions(positions))  # [B, S, H]
        mask = key_padding_mask(input_mask)
        for layer in self.encoder:
            x = layer(x, mask)
        return x

    def decode(
        self, tokens: torch.Tensor, memory: torch.Tensor, input_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tokens [B, T], memory [B, S, H] -> next-word logits [B, T, V] (tied output embeddings)."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.dropout(
            self.word_norm(self.word_embeddings(tokens) + self.word_positions(positions))
        )  # [B, T, H]
        mask = key_padding_mask(input_mask)
        for layer in self.decoder:
            x = layer(x, memory, mask)
        return x @ self.word_embeddings.weight.T  # [B, T, V]

    def forward(
        self, inputs: torch.Tensor, input_mask: torch.Tensor | None, captions: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced cross-entropy of captions [B, T] ([BOS] ... [EOS] [PAD]...), inputs [B, S, D]."""
        logits = self.decode(captions[:, :-1], self.encode(inputs, input_mask), input_mask)  # [B, T-1, V]
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), captions[:, 1:].reshape(-1), ignore_index=PAD
        )


@torch.no_grad()
def greedy_decode(
    model: CaptionModel, inputs: torch.Tensor, input_mask: torch.Tensor | None = None, max_len: int = 20
) -> list[list[int]]:
    """Most likely next word at every step, for a batch; returns word ids without [BOS]/[EOS]."""
    model.eval()
    memory = model.encode(inputs, input_mask)  # [B, S, H]
    tokens = torch.full((inputs.shape[0], 1), BOS, dtype=torch.long, device=inputs.device)  # [B, 1]
    done = torch.zeros(inputs.shape[0], dtype=torch.bool, device=inputs.device)
    for _ in range(max_len):
        logits = model.decode(tokens, memory, input_mask)[:, -1]  # [B, V]
        logits[:, [PAD, BOS]] = -math.inf  # never generated
        step = logits.argmax(-1)  # [B]
        step = torch.where(done, torch.full_like(step, PAD), step)
        tokens = torch.cat([tokens, step[:, None]], dim=1)
        done |= step == EOS
        if bool(done.all()):
            break
    return [[i for i in row[1:] if i not in (EOS, PAD)] for row in _until_eos(tokens.tolist())]


def _until_eos(rows: list[list[int]]) -> list[list[int]]:
    return [row[: row.index(EOS)] if EOS in row else row for row in rows]


@torch.no_grad()
def beam_search(
    model: CaptionModel,
    inputs: torch.Tensor,
    input_mask: torch.Tensor | None = None,
    beam_size: int = 4,
    max_len: int = 20,
    length_penalty: float = 0.6,
) -> list[list[int]]:
    """Beam search per example; finished hypotheses ranked by log-prob / ((5 + len) / 6) ** length_penalty."""
    model.eval()
    results = []
    for b in range(inputs.shape[0]):
        mask = input_mask[b : b + 1] if input_mask is not None else None
        memory = model.encode(inputs[b : b + 1], mask)  # [1, S, H]
        beams: list[tuple[list[int], float]] = [([BOS], 0.0)]
        finished: list[tuple[list[int], float]] = []
        for _ in range(max_len):
            tokens = torch.tensor([seq for seq, _ in beams], device=inputs.device)  # [n, t]
            n = tokens.shape[0]
            logp = model.decode(
                tokens, memory.expand(n, -1, -1), mask.expand(n, -1) if mask is not None else None
            )
            logp = logp[:, -1].float()
            logp[:, [PAD, BOS]] = -math.inf  # never generated
            logp = logp.log_softmax(-1)  # [n, V]
            total = torch.tensor([s for _, s in beams], device=inputs.device)[:, None] + logp  # [n, V]
            top = total.flatten().topk(min(beam_size * 2, total.numel()))
            candidates = []
            for score, flat in zip(top.values.tolist(), top.indices.tolist()):
                seq = beams[flat // logp.shape[1]][0] + [flat % logp.shape[1]]
                if seq[-1] == EOS:
                    finished.append((seq, score))
                else:
                    candidates.append((seq, score))
                if len(candidates) == beam_size:
                    break
            beams = candidates
            best_open = max((s for _, s in beams), default=-math.inf)
            if not beams or (
                len(finished) >= beam_size
                and max(_normalised(f, length_penalty) for f in finished)
                > best_open / _length_norm(len(beams[0][0]), length_penalty)
            ):
                break
        pool = finished or beams
        best = max(pool, key=lambda f: _normalised(f, length_penalty))[0]
        results.append([i for i in best[1:] if i not in (EOS, PAD)])
    return results


def _length_norm(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


def _normalised(hyp: tuple[list[int], float], alpha: float) -> float:
    return hyp[1] / _length_norm(len(hyp[0]), alpha)


def pad_inputs(rows: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length input sequences [S_i, D] -> (inputs [B, S, D] float32, mask [B, S] long)."""
    if not rows or any(len(r) == 0 for r in rows):
        raise VbertError("captioning input: every example needs at least one input vector")
    width = max(len(r) for r in rows)
    dim = rows[0].shape[1]
    out = np.zeros((len(rows), width, dim), np.float32)
    mask = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return torch.from_numpy(out), torch.from_numpy(mask)


def pad_captions(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """Encoded captions -> [B, T] long padded with [PAD]."""
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [PAD] * (width - len(r)) for r in rows], dtype=torch.long)


def train_captioner(
    model: CaptionModel,
    inputs: Sequence[np.ndarray],
    captions: Sequence[list[int]],
    *,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Teacher-forced training with AdamW and a linear decay; returns the mean loss of each epoch."""
    if len(inputs) != len(captions) or not inputs:
        raise VbertError(f"captioning: {len(inputs)} inputs but {len(captions)} captions")
    model.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(inputs) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / max(1, steps)))
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator).tolist()
        losses = []
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            x, mask = pad_inputs([inputs[i] for i in chosen])
            y = pad_captions([captions[i] for i in chosen])
            loss = model(x.to(device), mask.to(device), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.detach())  # on the device: no host sync inside the epoch
        history.append(float(torch.stack(losses).double().mean()))
    model.eval()
    return history
