"""VideoBERT for pretraining: the vbert BERT encoder over the joint vocabulary, an MLM head and an alignment head.

    [CLS] text [>] video [SEP] -> encoder -> MLM head at the masked slots (text and visual words)
                                           -> alignment head on [CLS]: does the text describe the video?

The encoder and MLM head are a `vbert.bert.model.BertForMaskedLM` (`.mlm`), so `vbert.bert.hf.export_hf(model.mlm, ...)`
writes a directory `transformers` loads. Losses are kept per regime (text-only, video-only,
video-text masked prediction, alignment) and summed with the weights of `PretrainConfig`;
everything is computed with fixed shapes and no host synchronisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vbert.bert.attention import MultiHeadAttention
from vbert.bert.hf import load_hf_bert
from vbert.bert.model import IGNORE_INDEX, BertConfig, BertForMaskedLM
from vbert.config import Config, PretrainConfig
from vbert.errors import DataError
from vbert.pretraining.data import JOINT, TEXT, VIDEO
from vbert.pretraining.joint_vocab import JointVocab


def project_centroids(centroids: torch.Tensor, hidden_size: int, scale: float, seed: int = 0) -> torch.Tensor:
    """Visual-word centroids [K, D] -> embedding rows [K, H] with row-wise std `scale`.

    When D == H (S3D's 1024 and BERT-large's hidden size, the paper's case) the centred centroids
    are used as they are; otherwise a fixed random Gaussian projection [D, H] maps them (it keeps
    distances between centroids nearly intact). Rows are then rescaled to the table's scale.
    """
    x = centroids.float() - centroids.float().mean(0, keepdim=True)  # [K, D]
    if x.shape[1] != hidden_size:
        g = torch.Generator().manual_seed(seed)
        x = x @ torch.randn(x.shape[1], hidden_size, generator=g) / x.shape[1] ** 0.5  # [K, H]
    return x / x.std().clamp(min=1e-12) * scale


class VideoBertForPretraining(nn.Module):
    """Joint masked prediction over text and visual words, plus linguistic-visual alignment on [CLS]."""

    def __init__(self, config: BertConfig, vocab: JointVocab, weights: PretrainConfig | None = None) -> None:
        super().__init__()
        if config.vocab_size != vocab.size:
            raise ValueError(
                f"BertConfig.vocab_size {config.vocab_size} != joint vocabulary size {vocab.size}"
            )
        weights = weights or PretrainConfig()
        self.vocab = vocab
        self.mlm = BertForMaskedLM(config)
        self.align = nn.Linear(config.hidden_size, 2)  # [CLS] pooled -> (misaligned, aligned)
        nn.init.normal_(self.align.weight, std=config.initializer_range)
        nn.init.zeros_(self.align.bias)
        self.loss_weights = {
            TEXT: weights.text_mlm_weight,
            VIDEO: weights.video_mlm_weight,
            JOINT: weights.joint_mlm_weight,
        }
        self.align_weight = weights.align_weight

    @property
    def config(self) -> BertConfig:
        """The encoder's BertConfig."""
        return self.mlm.config

    @property
    def bert(self) -> nn.Module:
        """The encoder (`vbert.bert.model.BertModel`)."""
        return self.mlm.bert

    def freeze_input_embeddings(self) -> None:
        """Stop gradients to the word table (tied to the MLM decoder: the output rows freeze too)."""
        self.bert.embeddings.word_embeddings.weight.requires_grad_(False)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        mlm_positions: torch.Tensor,
        mlm_labels: torch.Tensor,
        regime: torch.Tensor,
        align_labels: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """A batch of `vbert.pretraining.data` -> {"loss", "text_mlm", "video_mlm", "joint_mlm", "align", "align_acc"}."""
        batch, length = input_ids.shape
        hidden = self.bert(input_ids, token_type_ids, attention_mask)  # [B, L, H]
        h = hidden.reshape(batch * length, -1)[mlm_positions]  # [N, H], gathered before the vocabulary
        logits = self.mlm.mlm_logits(h)  # [N, V]
        ce = F.cross_entropy(logits.float(), mlm_labels, ignore_index=IGNORE_INDEX, reduction="none")  # [N]
        slot_regime = regime[mlm_positions // length]  # [N]
        valid = mlm_labels != IGNORE_INDEX  # [N]
        out: dict[str, torch.Tensor] = {}
        total = hidden.new_zeros((), dtype=torch.float32)
        for r, name in ((TEXT, "text_mlm"), (VIDEO, "video_mlm"), (JOINT, "joint_mlm")):
            chosen = (valid & (slot_regime == r)).float()  # [N]
            out[name] = (ce * chosen).sum() / chosen.sum().clamp(min=1.0)
            total = total + self.loss_weights[r] * out[name]
        align_logits = self.align(self.bert.pool(hidden)).float()  # [B, 2]
        has_label = (align_labels != IGNORE_INDEX).float()  # [B]
        align_ce = F.cross_entropy(
            align_logits, align_labels, ignore_index=IGNORE_INDEX, reduction="none"
        )  # [B]
        count = has_label.sum().clamp(min=1.0)
        out["align"] = (align_ce * has_label).sum() / count
        out["align_acc"] = ((align_logits.argmax(-1) == align_labels).float() * has_label).sum() / count
        out["loss"] = total + self.align_weight * out["align"]
        return out

    @torch.no_grad()
    def predict(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference: (MLM logits [B, L, V] at every position, alignment probability [B])."""
        hidden = self.bert(input_ids, token_type_ids, attention_mask)  # [B, L, H]
        aligned = self.align(self.bert.pool(hidden)).float().softmax(-1)[:, 1]  # [B]
        return self.mlm.mlm_logits(hidden), aligned


@torch.no_grad()
def attention_maps(
    model: VideoBertForPretraining,
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Attention weights of every layer, [B, heads, L, L] each, recomputed with the written-out attention.

    The production layers use PyTorch's fused kernel, which never materialises the weights; a hook
    catches each layer's input and `vbert.bert.attention.MultiHeadAttention` (loaded with the same
    fused weights) recomputes softmax(QK^T / sqrt(d)) from it.
    """
    inputs: list[torch.Tensor] = []
    hooks = [
        layer.attention.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
        for layer in model.bert.layers
    ]
    try:
        model.bert(input_ids, token_type_ids, attention_mask)
    finally:
        for hook in hooks:
            hook.remove()
    maps = []
    for layer, x in zip(model.bert.layers, inputs):
        readable = MultiHeadAttention(model.config.hidden_size, model.config.num_heads).to(x)
        readable.load_fused(layer.attention.qkv, layer.attention.out)
        maps.append(readable(x, attention_mask, return_weights=True)[1])  # [B, nh, L, L]
    return maps


def build_videobert(
    config: Config, vocab: JointVocab, centroids: torch.Tensor | None = None
) -> VideoBertForPretraining:
    """VideoBERT from `config`: from scratch, or from the BERT directory `config.model.init_from`.

    A BERT checkpoint's text rows are kept; K visual rows (random, or `centroids` [K, D] projected when
    `pretrain.visual_init == "centroids"`) and the [>] row are appended. Its vocabulary must be the
    text vocabulary of `vocab`.
    """
    pcfg = config.pretrain
    if pcfg.visual_init == "centroids":
        if centroids is None:
            raise DataError("pretrain.visual_init is 'centroids' but no visual-word centroids were given")
        if centroids.shape[0] != vocab.visual_size:
            raise DataError(
                f"{centroids.shape[0]} centroids for a vocabulary of {vocab.visual_size} visual words"
            )
    bert_config = BertConfig.from_model_config(config.model, vocab.size)
    model = VideoBertForPretraining(bert_config, vocab, pcfg)
    if config.model.init_from:
        source = load_hf_bert(
            Path(config.model.init_from),
            hidden_dropout=config.model.hidden_dropout,
            attention_dropout=config.model.attention_dropout,
        )
        if source.config.vocab_size != vocab.text_size:
            raise DataError(
                f"{config.model.init_from}: BERT vocabulary has {source.config.vocab_size} ids, but the "
                f"text tokenizer has {vocab.text_size}; use the checkpoint's own vocab.txt"
            )
        rows = source.config.initializer_range * torch.randn(vocab.visual_size + 1, source.config.hidden_size)
        if centroids is not None and pcfg.visual_init == "centroids":
            scale = float(source.bert.embeddings.word_embeddings.weight.std())
            rows[: vocab.visual_size] = project_centroids(
                centroids, source.config.hidden_size, scale, config.seed
            )
        source.resize_token_embeddings(vocab.size, rows)
        model = VideoBertForPretraining(source.config, vocab, pcfg)
        model.mlm = source
    elif centroids is not None and pcfg.visual_init == "centroids":
        table = model.bert.embeddings.word_embeddings.weight
        with torch.no_grad():
            table[vocab.text_size : vocab.next_id] = project_centroids(
                centroids, bert_config.hidden_size, bert_config.initializer_range, config.seed
            )
    if pcfg.freeze_input_embeddings:
        model.freeze_input_embeddings()
    return model
