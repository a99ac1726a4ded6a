"""The two training loops `vbert bench pretrain` compares, on the same model shape and batches.

- vbert's: `vbert.pretraining.trainer.Trainer.train_step` over `vbert.bert.model` (`vbert_trainer`);
- the plain loop a careful user writes over `transformers`' BertForMaskedLM (`PlainHFLoop`):
  `attn_implementation="sdpa"`, bf16 autocast, fused AdamW, `torch.compile`.

`BenchSetup` and `make_batch` give both the same VideoBERT-shaped masked-language batches (text
WordPieces + visual words + `[>]`); `build_variant` names each side of a comparison.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vbert.bert.hf import export_hf
from vbert.bert.model import IGNORE_INDEX, BertConfig, BertForMaskedLM
from vbert.config import PretrainConfig
from vbert.errors import VbertError
from vbert.pretraining.joint_vocab import JointVocab
from vbert.pretraining.optim import lr_factor
from vbert.pretraining.trainer import Trainer

StepFn = Callable[[dict[str, torch.Tensor]], Any]  # one training step on a batch -> its loss

SIZES = {  # name: (layers, hidden, heads, intermediate)
    "tiny": (2, 64, 4, 256),
    "base": (12, 768, 12, 3072),
    "paper": (24, 1024, 16, 4096),
}


@dataclass
class BenchSetup:
    """The model and batch shape being timed (defaults: VideoBERT-base, as in the issue)."""

    layers: int = 12
    hidden: int = 768
    heads: int = 12
    intermediate: int = 3072
    text_vocab: int = 30522
    visual_words: int = 20736
    seq_len: int = 128
    batch: int = 128
    mask_prob: float = 0.15
    dropout: float = 0.1

    @property
    def vocab(self) -> JointVocab:
        """The pretraining vocabulary layout: text WordPieces, then the visual words, then `[>]`."""
        return JointVocab(text_size=self.text_vocab, visual_size=self.visual_words)

    @property
    def vocab_size(self) -> int:
        """Rows of the joint embedding table."""
        return self.vocab.size

    @property
    def predictions_per_sequence(self) -> int:
        """A fixed number of predicted positions per sequence keeps every shape static."""
        return max(1, round(self.mask_prob * (self.seq_len - 3)))

    def bert_config(self) -> BertConfig:
        """The vbert encoder config of this setup."""
        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden,
            num_layers=self.layers,
            num_heads=self.heads,
            intermediate_size=self.intermediate,
            max_position_embeddings=max(512, self.seq_len),
            hidden_dropout=self.dropout,
            attention_dropout=self.dropout,
        )


def make_batch(setup: BenchSetup, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One video-text batch `[CLS] text [>] video [SEP]` with BERT masking (80/10/10, same modality).

    Returns input_ids, token_type_ids [B, L]; labels [B, L] (IGNORE_INDEX where not predicted);
    positions [B*P] (flat indices of the predicted tokens) and targets [B*P], P fixed per sequence.
    """
    b, length, p = setup.batch, setup.seq_len, setup.predictions_per_sequence
    vocab = setup.vocab
    text_low, video_low, video_high = vocab.text_low, vocab.text_size, vocab.next_id
    text_len = torch.randint(8, length // 2, (b,), generator=generator)  # [B]
    pos = torch.arange(length)[None, :]  # [1, L]
    sep_at = text_len[:, None] + 1  # position of [>]
    is_text = (pos >= 1) & (pos < sep_at)
    is_video = (pos > sep_at) & (pos < length - 1)
    text_ids = torch.randint(text_low, setup.text_vocab, (b, length), generator=generator)
    video_ids = torch.randint(video_low, video_high, (b, length), generator=generator)
    ids = torch.where(is_text, text_ids, video_ids)
    ids[:, 0], ids[:, -1] = vocab.cls_id, vocab.sep_id
    ids[pos.expand(b, -1) == sep_at] = vocab.next_id  # [>]
    token_types = (pos >= sep_at).long().expand(b, -1).contiguous()
    # choose exactly P maskable positions per row
    scores = torch.rand(b, length, generator=generator).masked_fill(~(is_text | is_video), -1.0)
    chosen = scores.topk(p, dim=1).indices.sort(dim=1).values  # [B, P]
    targets = ids.gather(1, chosen)  # [B, P]
    action = torch.rand(b, p, generator=generator)
    random_text = torch.randint(text_low, setup.text_vocab, (b, p), generator=generator)
    random_video = torch.randint(video_low, video_high, (b, p), generator=generator)
    chosen_is_text = is_text.gather(1, chosen)
    replacement = torch.where(
        action < 0.8,
        torch.full_like(targets, vocab.mask_id),
        torch.where(action < 0.9, torch.where(chosen_is_text, random_text, random_video), targets),
    )
    masked = ids.scatter(1, chosen, replacement)
    labels = torch.full_like(ids, IGNORE_INDEX).scatter(1, chosen, targets)
    flat_positions = (chosen + torch.arange(b)[:, None] * length).reshape(-1)
    return {
        "input_ids": masked,
        "token_type_ids": token_types,
        "labels": labels,
        "positions": flat_positions,
        "targets": targets.reshape(-1),
    }


class VbertMLM(nn.Module):
    """vbert's BertForMaskedLM behind the trainer's interface (`forward(**batch) -> {"loss"}`)."""

    def __init__(self, config: BertConfig, full_vocab_head: bool = False, padding_mask: bool = False) -> None:
        super().__init__()
        self.net = BertForMaskedLM(config)
        self.full_vocab_head = full_vocab_head  # ablation: logits at every position, like the plain loop
        self.padding_mask = padding_mask  # ablation: pass an all-ones mask (disables the flash kernel)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        labels: torch.Tensor,
        positions: torch.Tensor,
        targets: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Masked-LM loss of one batch."""
        mask = torch.ones_like(input_ids) if self.padding_mask else None
        if self.full_vocab_head:
            hidden = self.net.bert(input_ids, token_type_ids, mask)  # [B, L, H]
            logits = self.net.mlm_logits(hidden)  # [B, L, V]
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
            return {"loss": loss}
        return {"loss": self.net(input_ids, token_type_ids, mask, labels=targets, positions=positions).loss}


def hf_model_from_vbert(model: BertForMaskedLM) -> nn.Module:
    """A transformers BertForMaskedLM (SDPA attention) holding exactly `model`'s weights."""
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        export_hf(model, tmp)
        return transformers.BertForMaskedLM.from_pretrained(tmp, attn_implementation="sdpa")


def _decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


class PlainHFLoop:
    """The reference: transformers BertForMaskedLM, bf16 autocast, fused AdamW, optional compile."""

    def __init__(
        self, model: nn.Module, config: PretrainConfig, device: torch.device, compile_model: bool
    ) -> None:
        self.model = model.to(device).train()
        self.device, self.config = device, config
        fused = {"fused": True} if device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW(
            _decay_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.999), eps=1e-6, **fused
        )

        schedule = partial(
            lr_factor, warmup=config.warmup_steps, total=config.steps, schedule=config.schedule
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.forward = torch.compile(self.model) if compile_model else self.model
        self.amp = device.type == "cuda" and config.precision != "fp32"

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step: full-vocabulary logits, cross-entropy over the labelled positions."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()
        with amp:
            out = self.forward(
                input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"], labels=batch["labels"]
            )
        out.loss.backward()
        if self.config.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad, foreach=True)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": out.loss.detach().float()}


def vbert_trainer(
    setup: BenchSetup, config: PretrainConfig, device: torch.device, **variant: bool
) -> Trainer:
    """vbert's Trainer around VbertMLM, ready for `train_step` (no data, no output folder)."""
    torch.manual_seed(0)
    bert_config = replace(
        setup.bert_config(), low_precision_residual=variant.get("low_precision_residual", False)
    )
    model = VbertMLM(bert_config, variant.get("full_vocab_head", False), variant.get("padding_mask", False))
    return Trainer(model, config, out_dir=None, device=device)


COMPILE_MODES = {"compiled": "default", "cudagraphs": "reduce-overhead", "autotune": "max-autotune"}
MODEL_SWITCHES = {
    "fullhead": "full_vocab_head",
    "padmask": "padding_mask",
    "bf16res": "low_precision_residual",
}


def check_variant(variant: str) -> list[str]:
    """The words of a variant name; a VbertError when it has a word this benchmark does not know.

    A name is `plain` or `vbert`, then at most one of `eager` and the compile modes, and (vbert only)
    any of the model switches: a misspelt word would otherwise measure another variant silently.
    """
    words = variant.split("-")
    modes = [w for w in words[1:] if w == "eager" or w in COMPILE_MODES]
    allowed = {"eager", *COMPILE_MODES} | (set(MODEL_SWITCHES) if words[0] == "vbert" else set())
    unknown = [w for w in words[1:] if w not in allowed]
    if words[0] not in ("plain", "vbert") or unknown or len(modes) > 1:
        raise VbertError(
            f"unknown variant {variant!r}: expected plain-MODE or vbert[-SWITCH...][-MODE], with MODE one of "
            f"eager, {', '.join(COMPILE_MODES)} and SWITCH one of {', '.join(MODEL_SWITCHES)}"
        )
    return words


def build_variant(variant: str, setup: BenchSetup, config: PretrainConfig, device: torch.device) -> StepFn:
    """The train-step function a variant name describes.

    `plain-eager` / `plain-compiled`: the transformers loop. `vbert-...`: vbert's trainer, with
    `eager`, `compiled`, `cudagraphs` (compile + CUDA graphs) or `autotune` (max-autotune), and the
    ablations `fullhead` (logits at every position) and `padmask` (an all-ones padding mask), and
    `bf16res` (the residual stream in bf16, `BertConfig.low_precision_residual`).
    """
    words = check_variant(variant)
    mode = next((COMPILE_MODES[w] for w in words if w in COMPILE_MODES), None)
    if words[0] == "plain":
        torch.manual_seed(0)
        hf = hf_model_from_vbert(VbertMLM(setup.bert_config()).net)
        return PlainHFLoop(hf, config, device, mode is not None).train_step
    cfg = PretrainConfig(**{**asdict(config), "compile": mode is not None, "compile_mode": mode or "default"})
    return vbert_trainer(setup, cfg, device, **variant_flags(variant)).train_step


def variant_flags(variant: str) -> dict[str, bool]:
    """The model switches a vbert variant name asks for (`fullhead`, `padmask`, `bf16res`)."""
    words = check_variant(variant)
    return {flag: word in words for word, flag in MODEL_SWITCHES.items()}
