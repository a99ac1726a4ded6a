"""`vbert bench pretrain`: vbert's training step against a plain transformers BertForMaskedLM loop.

Both sides train the same VideoBERT-shaped masked-language model (text WordPieces + visual words +
`[>]`) on the same batches, in one process on one device, and report sequences/s, tokens/s, peak
memory and *useful* MFU:

    useful FLOPs/token = 6 x encoder matmul parameters + 12 x layers x hidden x seq_len (attention)
                         + 6 x predicted fraction x (hidden^2 + hidden x vocab)   (masked-only head)

(`vbert.bert.model.flops_per_token`), divided by the device's dense bf16 peak. FLOPs a loop spends on
positions that are not predicted (a full-vocabulary head) are not useful and do not count.

The two loops (`vbert.pretraining.bench_loops`): the plain one is what a careful user writes
(`attn_implementation="sdpa"`, bf16 autocast, fused AdamW, `torch.compile`); vbert's side is
`vbert.pretraining.trainer.Trainer.train_step` over `vbert.bert.model`.
`--check-agreement N` trains both from the same weights on the same batches with dropout off and
reports how far their loss curves drift apart.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from vbert.bert.model import flops_per_token
from vbert.config import PretrainConfig
from vbert.core.device import select_device
from vbert.pretraining.bench_loops import (
    SIZES,
    BenchSetup,
    PlainHFLoop,
    StepFn,
    build_variant,
    check_variant,
    hf_model_from_vbert,
    make_batch,
    variant_flags,
    vbert_trainer,
)

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def profile_steps(
    step_fn: StepFn, batches: list[dict[str, torch.Tensor]], device: torch.device, steps: int = 5
) -> str:
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


def time_steps(
    step_fn: StepFn, batches: list[dict[str, torch.Tensor]], warmup: int, steps: int, device: torch.device
) -> tuple[float, list[float]]:
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


def measure(
    name: str,
    step_fn: StepFn,
    setup: BenchSetup,
    batches: list[dict[str, torch.Tensor]],
    warmup: int,
    steps: int,
    device: torch.device,
    peak: float | None,
) -> dict[str, Any]:
    """Throughput, memory and useful MFU of one training-step function."""
    seconds, losses = time_steps(step_fn, batches, warmup, steps, device)
    seq_s = setup.batch * steps / seconds
    tokens_s = seq_s * setup.seq_len
    useful = flops_per_token(setup.bert_config(), setup.seq_len, setup.mask_prob) * tokens_s / 1e12
    row = {
        "name": name,
        "seq_per_s": round(seq_s, 1),
        "tokens_per_s": round(tokens_s),
        "useful_tflops": round(useful, 1),
        "mfu": round(useful / peak, 4) if peak else None,
        "peak_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if device.type == "cuda"
        else None,
        "last_loss": round(losses[-1], 4),
    }
    print(json.dumps(row), flush=True)
    return row


def agreement(
    setup: BenchSetup,
    config: PretrainConfig,
    device: torch.device,
    steps: int,
    compile_both: bool,
    vbert_variant: str = "vbert",
) -> dict:
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

    result = {
        "steps": steps,
        "step0_vbert": curves["vbert"][0],
        "step0_plain": curves["plain"][0],
        "final_vbert": curves["vbert"][-1],
        "final_plain": curves["plain"][-1],
        **gap("vbert", "plain"),
        "curves": curves,
    }
    if "plain_fp32" in curves:
        result["bf16_noise"] = gap("plain", "plain_fp32")
        result["bf16_noise_vbert"] = gap("vbert", "vbert_fp32")
        result["fp32_gap"] = gap("vbert_fp32", "plain_fp32")
    return result


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run the throughput comparison (and optionally the agreement check); return the results."""
    variants = args.variants.split(",")
    for variant in [*variants, args.agreement_vbert]:  # a misspelt name fails before anything is timed
        check_variant(variant)
    device = select_device(args.device)
    if args.fp32_matmul_reduction:  # cuBLAS may otherwise reduce split-K partial sums in bf16
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    layers, hidden, heads, inter = SIZES[args.size]
    setup = BenchSetup(
        layers,
        hidden,
        heads,
        inter,
        seq_len=args.seq_len,
        batch=args.batch,
        text_vocab=args.text_vocab,
        visual_words=args.visual_words,
    )
    config = PretrainConfig(steps=10**6, lr=1e-4, warmup_steps=0, precision="auto", compile=False)
    peak = peak_tflops(device, args.peak_tflops)
    generator = torch.Generator().manual_seed(0)
    batches = [make_batch(setup, generator) for _ in range(4)]
    if device.type == "cuda":
        batches = [{k: v.pin_memory() for k, v in b.items()} for b in batches]
    results: dict[str, Any] = {
        "setup": asdict(setup),
        "device": str(torch.cuda.get_device_name(device)) if device.type == "cuda" else "cpu",
        "peak_tflops": peak,
        "rows": [],
    }
    for variant in variants:
        step_fn = build_variant(variant, setup, config, device)
        results["rows"].append(
            measure(variant, step_fn, setup, batches, args.warmup, args.steps, device, peak)
        )
        if args.profile and variant == args.profile:
            results["profile"] = profile_steps(step_fn, batches, device)
        del step_fn
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.check_agreement:
        agree_cfg = PretrainConfig(**{**asdict(config), "precision": args.agreement_precision})
        results["agreement"] = agreement(
            setup, agree_cfg, device, args.check_agreement, args.agreement_compile, args.agreement_vbert
        )
        a = results["agreement"]
        print(
            f"agreement over {a['steps']} steps: step0 {a['step0_vbert']:.4f} vs {a['step0_plain']:.4f}, "
            f"max |diff| {a['max_abs_diff']:.4f} (mean {a['mean_abs_diff']:.4f}), "
            f"final {a['final_vbert']:.4f} vs {a['final_plain']:.4f}"
        )
        if "bf16_noise" in a:
            n = a["bf16_noise"]
            print(
                f"bf16 noise (plain bf16 vs plain fp32): max |diff| {n['max_abs_diff']:.4f} "
                f"(mean {n['mean_abs_diff']:.4f})"
            )
            n = a["bf16_noise_vbert"]
            print(
                f"bf16 noise (vbert bf16 vs vbert fp32): max |diff| {n['max_abs_diff']:.4f} "
                f"(mean {n['mean_abs_diff']:.4f})"
            )
            n = a["fp32_gap"]
            print(
                f"fp32 (vbert fp32 vs plain fp32): max |diff| {n['max_abs_diff']:.6f} "
                f"(mean {n['mean_abs_diff']:.6f})"
            )
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert bench`."""
    parser.add_argument("what", choices=["pretrain"], help="what to benchmark")
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="base",
        help="encoder size: base (12 x 768), paper (24 x 1024), tiny (2 x 64, for tests); default base",
    )
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    parser.add_argument("--batch", type=int, default=128, help="sequences per step (default: 128)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default: 128)")
    parser.add_argument(
        "--text-vocab", type=int, default=30522, help="WordPiece ids (default: BERT's 30,522)"
    )
    parser.add_argument(
        "--visual-words", type=int, default=20736, help="visual words (default: 12^4 = 20,736)"
    )
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps (compilation happens here)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument(
        "--variants",
        default="plain-eager,plain-compiled,vbert-eager,vbert-compiled",
        help="comma list of plain-{eager,compiled} and vbert-{eager,compiled,cudagraphs,autotune}, "
        "with optional vbert ablations, e.g. vbert-fullhead-eager, vbert-padmask-compiled",
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="dense bf16 peak (default: by GPU name)"
    )
    parser.add_argument(
        "--check-agreement",
        type=int,
        default=0,
        metavar="STEPS",
        help="also train both from the same weights for STEPS steps and compare losses",
    )
    parser.add_argument(
        "--agreement-compile", action="store_true", help="compile both sides in the agreement run"
    )
    parser.add_argument(
        "--agreement-precision",
        choices=["auto", "fp32"],
        default="auto",
        help="auto: bf16 on CUDA (with an fp32 plain run as the noise reference)",
    )
    parser.add_argument(
        "--agreement-vbert",
        default="vbert",
        metavar="VARIANT",
        help="the vbert side of the agreement run, e.g. vbert-bf16res (its model switches only)",
    )
    parser.add_argument(
        "--fp32-matmul-reduction",
        action="store_true",
        help="forbid reduced-precision (bf16) reductions inside bf16 matrix multiplications",
    )
    parser.add_argument("--profile", default=None, metavar="VARIANT", help="profile this variant's steps")
    parser.add_argument("--json", default=None, help="write the results here")


def main(args: argparse.Namespace) -> int:
    """Run `vbert bench pretrain`."""
    results = run_benchmark(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    rows = results["rows"]
    reference = next((r for r in rows if r["name"] == "plain-compiled"), None)
    print(
        f"\n{'variant':<24} {'seq/s':>9} {'tokens/s':>11} {'useful MFU':>11} {'peak GiB':>9} {'vs plain-compiled':>18}"
    )
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        ratio = f"{r['seq_per_s'] / reference['seq_per_s']:.2f}x" if reference else ""
        print(
            f"{r['name']:<24} {r['seq_per_s']:>9.1f} {r['tokens_per_s']:>11,} {mfu:>11} "
            f"{r['peak_mem_gib']!s:>9} {ratio:>18}"
        )
    return 0 if all(math.isfinite(r["last_loss"]) for r in rows) else 1
