"""`vbert bench pretrain`: vbert's training step against a plain transformers BertForMaskedLM loop.

Both sides train the same VideoBERT-shaped masked-language model (text WordPieces + visual words +
`[>]`) on the same batches, in one process on one device, and report sequences/s, tokens/s, peak
memory and *useful* MFU:

    useful FLOPs/token = 6 x encoder matmul parameters + 12 x layers x hidden x seq_len (attention)
                         + 6 x predicted fraction x (hidden^2 + hidden x vocab)   (masked-only head)

(`vbert.model.flops_per_token`), divided by the device's dense bf16 peak. FLOPs a loop spends on
positions that are not predicted (a full-vocabulary head) are not useful and do not count.

The plain loop is what a careful user writes: `attn_implementation="sdpa"`, bf16 autocast, fused
AdamW, `torch.compile`. vbert's side is `vbert.train.Trainer.train_step` over `vbert.model`.
`--check-agreement N` trains both from the same weights on the same batches with dropout off and
reports how far their loss curves drift apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from vbert.config import PretrainConfig
from vbert.model import IGNORE_INDEX, BertConfig, BertForMaskedLM, flops_per_token
from vbert.pretrain_data import JointVocab

if TYPE_CHECKING:
    from vbert.train import Trainer

StepFn = Callable[[dict[str, torch.Tensor]], Any]  # one training step on a batch -> its loss

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}
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
            vocab_size=self.vocab_size, hidden_size=self.hidden, num_layers=self.layers, num_heads=self.heads,
            intermediate_size=self.intermediate, max_position_embeddings=max(512, self.seq_len),
            hidden_dropout=self.dropout, attention_dropout=self.dropout,
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
    replacement = torch.where(action < 0.8, torch.full_like(targets, vocab.mask_id),
                              torch.where(action < 0.9, torch.where(chosen_is_text, random_text, random_video), targets))
    masked = ids.scatter(1, chosen, replacement)
    labels = torch.full_like(ids, IGNORE_INDEX).scatter(1, chosen, targets)
    flat_positions = (chosen + torch.arange(b)[:, None] * length).reshape(-1)
    return {"input_ids": masked, "token_type_ids": token_types, "labels": labels,
            "positions": flat_positions, "targets": targets.reshape(-1)}


class VbertMLM(nn.Module):
    """vbert's BertForMaskedLM behind the trainer's interface (`forward(**batch) -> {"loss"}`)."""

    def __init__(self, config: BertConfig, full_vocab_head: bool = False, padding_mask: bool = False) -> None:
        super().__init__()
        self.net = BertForMaskedLM(config)
        self.full_vocab_head = full_vocab_head  # ablation: logits at every position, like the plain loop
        self.padding_mask = padding_mask  # ablation: pass an all-ones mask (disables the flash kernel)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, labels: torch.Tensor,
                positions: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
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

    from vbert.hf import export_hf

    with tempfile.TemporaryDirectory() as tmp:
        export_hf(model, tmp)
        return transformers.BertForMaskedLM.from_pretrained(tmp, attn_implementation="sdpa")


def _decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


class PlainHFLoop:
    """The reference: transformers BertForMaskedLM, bf16 autocast, fused AdamW, optional compile."""

    def __init__(self, model: nn.Module, config: PretrainConfig, device: torch.device, compile_model: bool) -> None:
        self.model = model.to(device).train()
        self.device, self.config = device, config
        fused = {"fused": True} if device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW(_decay_groups(model, config.weight_decay), lr=config.lr,
                                           betas=(0.9, 0.999), eps=1e-6, **fused)
        from vbert.optim import lr_factor  # the same warmup + decay as vbert's trainer

        schedule = partial(lr_factor, warmup=config.warmup_steps, total=config.steps, schedule=config.schedule)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.forward = torch.compile(self.model) if compile_model else self.model
        self.amp = device.type == "cuda" and config.precision != "fp32"

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step: full-vocabulary logits, cross-entropy over the labelled positions."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()
        with amp:
            out = self.forward(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                               labels=batch["labels"])
        out.loss.backward()
        if self.config.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad, foreach=True)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": out.loss.detach().float()}


def vbert_trainer(setup: BenchSetup, config: PretrainConfig, device: torch.device, **variant: bool) -> Trainer:
    """vbert's Trainer around VbertMLM, ready for `train_step` (no data, no output folder)."""
    from vbert.train import Trainer

    torch.manual_seed(0)
    bert_config = replace(setup.bert_config(), low_precision_residual=variant.get("low_precision_residual", False))
    model = VbertMLM(bert_config, variant.get("full_vocab_head", False), variant.get("padding_mask", False))
    return Trainer(model, config, out_dir=None, device=device)


COMPILE_MODES = {"compiled": "default", "cudagraphs": "reduce-overhead", "autotune": "max-autotune"}


def build_variant(variant: str, setup: BenchSetup, config: PretrainConfig, device: torch.device) -> StepFn:
    """The train-step function a variant name describes.

    `plain-eager` / `plain-compiled`: the transformers loop. `vbert-...`: vbert's trainer, with
    `eager`, `compiled`, `cudagraphs` (compile + CUDA graphs) or `autotune` (max-autotune), and the
    ablations `fullhead` (logits at every position) and `padmask` (an all-ones padding mask), and
    `bf16res` (the residual stream in bf16, `BertConfig.low_precision_residual`).
    """
    words = variant.split("-")
    mode = next((COMPILE_MODES[w] for w in words if w in COMPILE_MODES), None)
    if words[0] == "plain":
        torch.manual_seed(0)
        hf = hf_model_from_vbert(VbertMLM(setup.bert_config()).net)
        return PlainHFLoop(hf, config, device, mode is not None).train_step
    if words[0] != "vbert":
        raise ValueError(f"unknown variant {variant!r}: it starts with 'plain' or 'vbert'")
    cfg = PretrainConfig(**{**asdict(config), "compile": mode is not None, "compile_mode": mode or "default"})
    return vbert_trainer(setup, cfg, device, **variant_flags(variant)).train_step


def variant_flags(variant: str) -> dict[str, bool]:
    """The model switches a vbert variant name asks for (`fullhead`, `padmask`, `bf16res`)."""
    words = variant.split("-")
    return {"full_vocab_head": "fullhead" in words, "padding_mask": "padmask" in words,
            "low_precision_residual": "bf16res" in words}


def profile_steps(step_fn: StepFn, batches: list[dict[str, torch.Tensor]], device: torch.device, steps: int = 5) -> str:
    """Where one step's time goes: the profiler's top kernels by device time (after warm steps)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(steps):
            step_fn(batches[i % len(batches)])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=70)
    print(table, flush=True)
    return table


def peak_tflops(device: torch.device, override: float | None = None) -> float | None:
    """Dense bf16 peak of `device` in TFLOP/s (None when unknown, e.g. on a CPU)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def time_steps(step_fn: StepFn, batches: list[dict[str, torch.Tensor]], warmup: int, steps: int,
               device: torch.device) -> tuple[float, list[float]]:
    """Seconds for `steps` timed steps after `warmup` untimed ones; also every loss seen."""
    losses = []
    for i in range(warmup):
        losses.append(step_fn(batches[i % len(batches)])["loss"])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for i in range(steps):
        losses.append(step_fn(batches[(warmup + i) % len(batches)])["loss"])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, [float(x) for x in losses]


def measure(name: str, step_fn: StepFn, setup: BenchSetup, batches: list[dict[str, torch.Tensor]], warmup: int,
            steps: int, device: torch.device, peak: float | None) -> dict[str, Any]:
    """Throughput, memory and useful MFU of one training-step function."""
    seconds, losses = time_steps(step_fn, batches, warmup, steps, device)
    seq_s = setup.batch * steps / seconds
    tokens_s = seq_s * setup.seq_len
    useful = flops_per_token(setup.bert_config(), setup.seq_len, setup.mask_prob) * tokens_s / 1e12
    row = {"name": name, "seq_per_s": round(seq_s, 1), "tokens_per_s": round(tokens_s),
           "useful_tflops": round(useful, 1), "mfu": round(useful / peak, 4) if peak else None,
           "peak_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
           "last_loss": round(losses[-1], 4)}
    print(json.dumps(row), flush=True)
    return row


def agreement(setup: BenchSetup, config: PretrainConfig, device: torch.device, steps: int, compile_both: bool,
              vbert_variant: str = "vbert") -> dict:
    """Train vbert and the plain loop from the same weights on the same batches (dropout off).

    On CUDA both run in bf16, and each side also runs once in fp32: the gap between a side's bf16
    and fp32 curves is that side's bf16 noise, the yardstick for the vbert-vs-plain bf16 gap; the
    gap between the two fp32 curves shows whether the mathematics is the same.
    """
    setup = BenchSetup(**{**asdict(setup), "dropout": 0.0})
    flags = variant_flags(vbert_variant)
    trainer = vbert_trainer(setup, config, device, **flags)
    if compile_both:
        trainer.forward = torch.compile(trainer.forward)
    steppers: dict[str, Any] = {"vbert": trainer}
    steppers["plain"] = PlainHFLoop(hf_model_from_vbert(trainer.model.net), config, device, compile_both)
    if device.type == "cuda" and config.precision != "fp32":
        fp32 = PretrainConfig(**{**asdict(config), "precision": "fp32"})
        steppers["vbert_fp32"] = vbert_trainer(setup, fp32, device, **flags)  # same seed, so the same weights
        steppers["plain_fp32"] = PlainHFLoop(hf_model_from_vbert(trainer.model.net), fp32, device, False)
    generator = torch.Generator().manual_seed(1)
    curves: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(steps):
        batch = make_batch(setup, generator)
        for name, stepper in steppers.items():
            curves[name].append(float(stepper.train_step(batch)["loss"]))

    def gap(a: str, b: str) -> dict[str, float]:
        diffs = [abs(x - y) for x, y in zip(curves[a], curves[b])]
        return {"max_abs_diff": max(diffs), "mean_abs_diff": sum(diffs) / len(diffs)}

    result = {"steps": steps, "step0_vbert": curves["vbert"][0], "step0_plain": curves["plain"][0],
              "final_vbert": curves["vbert"][-1], "final_plain": curves["plain"][-1],
              **gap("vbert", "plain"), "curves": curves}
    if "plain_fp32" in curves:
        result["bf16_noise"] = gap("plain", "plain_fp32")
        result["bf16_noise_vbert"] = gap("vbert", "vbert_fp32")
        result["fp32_gap"] = gap("vbert_fp32", "plain_fp32")
    return result


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run the throughput comparison (and optionally the agreement check); return the results."""
    from vbert.device import select_device

    device = select_device(args.device)
    if args.fp32_matmul_reduction:  # cuBLAS may otherwise reduce split-K partial sums in bf16
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    layers, hidden, heads, inter = SIZES[args.size]
    setup = BenchSetup(layers, hidden, heads, inter, seq_len=args.seq_len, batch=args.batch,
                       text_vocab=args.text_vocab, visual_words=args.visual_words)
    config = PretrainConfig(steps=10**6, lr=1e-4, warmup_steps=0, precision="auto", compile=False)
    peak = peak_tflops(device, args.peak_tflops)
    generator = torch.Generator().manual_seed(0)
    batches = [make_batch(setup, generator) for _ in range(4)]
    if device.type == "cuda":
        batches = [{k: v.pin_memory() for k, v in b.items()} for b in batches]
    results: dict[str, Any] = {"setup": asdict(setup), "device": str(torch.cuda.get_device_name(device))
                               if device.type == "cuda" else "cpu", "peak_tflops": peak, "rows": []}
    for variant in args.variants.split(","):
        step_fn = build_variant(variant, setup, config, device)
        results["rows"].append(measure(variant, step_fn, setup, batches, args.warmup, args.steps, device, peak))
        if args.profile and variant == args.profile:
            results["profile"] = profile_steps(step_fn, batches, device)
        del step_fn
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.check_agreement:
        agree_cfg = PretrainConfig(**{**asdict(config), "precision": args.agreement_precision})
        results["agreement"] = agreement(setup, agree_cfg, device, args.check_agreement, args.agreement_compile,
                                         args.agreement_vbert)
        a = results["agreement"]
        print(f"agreement over {a['steps']} steps: step0 {a['step0_vbert']:.4f} vs {a['step0_plain']:.4f}, "
              f"max |diff| {a['max_abs_diff']:.4f} (mean {a['mean_abs_diff']:.4f}), "
              f"final {a['final_vbert']:.4f} vs {a['final_plain']:.4f}")
        if "bf16_noise" in a:
            n = a["bf16_noise"]
            print(f"bf16 noise (plain bf16 vs plain fp32): max |diff| {n['max_abs_diff']:.4f} "
                  f"(mean {n['mean_abs_diff']:.4f})")
            n = a["bf16_noise_vbert"]
            print(f"bf16 noise (vbert bf16 vs vbert fp32): max |diff| {n['max_abs_diff']:.4f} "
                  f"(mean {n['mean_abs_diff']:.4f})")
            n = a["fp32_gap"]
            print(f"fp32 (vbert fp32 vs plain fp32): max |diff| {n['max_abs_diff']:.6f} "
                  f"(mean {n['mean_abs_diff']:.6f})")
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert bench`."""
    parser.add_argument("what", choices=["pretrain"], help="what to benchmark")
    parser.add_argument("--size", choices=sorted(SIZES), default="base",
                        help="encoder size: base (12 x 768), paper (24 x 1024), tiny (2 x 64, for tests); default base")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    parser.add_argument("--batch", type=int, default=128, help="sequences per step (default: 128)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default: 128)")
    parser.add_argument("--text-vocab", type=int, default=30522, help="WordPiece ids (default: BERT's 30,522)")
    parser.add_argument("--visual-words", type=int, default=20736, help="visual words (default: 12^4 = 20,736)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps (compilation happens here)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--variants", default="plain-eager,plain-compiled,vbert-eager,vbert-compiled",
                        help="comma list of plain-{eager,compiled} and vbert-{eager,compiled,cudagraphs,autotune}, "
                             "with optional vbert ablations, e.g. vbert-fullhead-eager, vbert-padmask-compiled")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak (default: by GPU name)")
    parser.add_argument("--check-agreement", type=int, default=0, metavar="STEPS",
                        help="also train both from the same weights for STEPS steps and compare losses")
    parser.add_argument("--agreement-compile", action="store_true", help="compile both sides in the agreement run")
    parser.add_argument("--agreement-precision", choices=["auto", "fp32"], default="auto",
                        help="auto: bf16 on CUDA (with an fp32 plain run as the noise reference)")
    parser.add_argument("--agreement-vbert", default="vbert", metavar="VARIANT",
                        help="the vbert side of the agreement run, e.g. vbert-bf16res (its model switches only)")
    parser.add_argument("--fp32-matmul-reduction", action="store_true",
                        help="forbid reduced-precision (bf16) reductions inside bf16 matrix multiplications")
    parser.add_argument("--profile", default=None, metavar="VARIANT", help="profile this variant's steps")
    parser.add_argument("--json", default=None, help="write the results here")


def main(args: argparse.Namespace) -> int:
    """Run `vbert bench pretrain`."""
    results = run_benchmark(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    rows = results["rows"]
    reference = next((r for r in rows if r["name"] == "plain-compiled"), None)
    print(f"\n{'variant':<24} {'seq/s':>9} {'tokens/s':>11} {'useful MFU':>11} {'peak GiB':>9} {'vs plain-compiled':>18}")
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        ratio = f"{r['seq_per_s'] / reference['seq_per_s']:.2f}x" if reference else ""
        print(f"{r['name']:<24} {r['seq_per_s']:>9.1f} {r['tokens_per_s']:>11,} {mfu:>11} "
              f"{r['peak_mem_gib']!s:>9} {ratio:>18}")
    return 0 if all(math.isfinite(r["last_loss"]) for r in rows) else 1
