"""`vbert pretrain`: token files -> a pretrained VideoBERT folder (checkpoints, logs, final weights).

    vbert pretrain --preset tiny --data runs/demo/tokenize --out runs/pretrain
    torchrun --nproc_per_node=8 -m vbert.cli pretrain --preset base --data ... --out ...

The output folder holds `checkpoints/` (resumable), `metrics.jsonl`, `tensorboard/`, and when the
run is complete: `videobert.safetensors` (encoder + both heads), `bert_config.json`,
`joint_vocab.json`, `tokenizer/`, `hf/` (a `transformers` BertForMaskedLM directory) and a manifest.
Re-running the same command continues an interrupted run from its latest checkpoint. A checkpoint
trained with other settings (the "recipe": seed, text, model and pretrain settings other than those
in `RUN_ONLY_SETTINGS`, the tokens, the centroids) is refused unless `--resume` asks to continue it
anyway; the "pretrain" stage of `vbert run` trains again instead, and skips a finished model whose
recipe is unchanged, whatever the run-only settings say. The finished folder is written and read
by `vbert.pretraining.saved`; `STAGE` is the pipeline's "pretrain" stage, and
`vbert.core.stages.resolve(STAGE, config)` gives a config's cached pretrained model.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from vbert.bert.wordpiece import WORDPIECE_TRAINER_VERSION, build_tokenizer, load_tokenizer
from vbert.config import Config, add_config_arguments, config_from_args
from vbert.core.device import select_device
from vbert.core.distributed import init_distributed
from vbert.core.manifest import (
    MANIFEST,
    atomic_write_json,
    file_sha256,
    is_complete,
    json_hash,
    read_manifest,
    write_manifest,
)
from vbert.core.stages import Resolver, Stage
from vbert.errors import ConfigError, DataError
from vbert.pretraining.data import ExampleBuilder, PretrainBatches, tokenize_records
from vbert.pretraining.joint_vocab import JointVocab
from vbert.pretraining.saved import WEIGHTS, save_pretrained
from vbert.pretraining.trainer import Trainer, TrainResult
from vbert.pretraining.videobert import build_videobert
from vbert.visual_words.kmeans import HierarchicalKMeans
from vbert.visual_words.token_file import read_token_file, token_file
from vbert.visual_words.tokenize import STAGE as TOKENIZE
from vbert.visual_words.vocab import STAGE as VOCAB
from vbert.visual_words.vocab import vocab_file as vocab_file_of

# Settings that decide how a run logs, saves and feeds the GPU, not what it learns: changing them
# neither makes a finished model stale nor stops a checkpoint from being continued.
RUN_ONLY_SETTINGS = (
    "keep_checkpoints",
    "log_every",
    "checkpoint_every",
    "num_workers",
    "tensorboard",
    "compile",
    "compile_mode",
)
TOKENIZER_SOURCE = "vbert-source.json"  # beside a trained tokenizer: the settings and text it was trained on


def result_config(config: Config) -> dict[str, Any]:
    """The config as a dict without the settings that only run pretraining (`RUN_ONLY_SETTINGS`)."""
    data = config.to_dict()
    data["pretrain"] = {k: v for k, v in data["pretrain"].items() if k not in RUN_ONLY_SETTINGS}
    return data


def training_recipe(config: Config, tokens_sha: str, centroids_sha: str | None = None) -> dict[str, Any]:
    """What decides the trained weights: seed, text, model and training settings, the tokens (and centroids)."""
    data = result_config(config)
    recipe = {
        "seed": data["seed"],
        "text": data["text"],
        "model": data["model"],
        "pretrain": data["pretrain"],
        "tokens": tokens_sha,
    }
    if centroids_sha is not None:
        recipe["centroids"] = centroids_sha
    return recipe


def prepare_tokenizer(
    config: Config,
    records: list[dict],
    out_dir: Path,
    reuse: bool = True,
    source: dict[str, Any] | None = None,
) -> Any:
    """The text tokenizer: the BERT checkpoint's own, one saved in `out_dir` (when `reuse` and it was
    trained from the same `source`: text settings and token file), or a new one."""
    if config.model.init_from:
        return load_tokenizer(config.model.init_from, lowercase=config.text.lowercase)
    saved = out_dir / "tokenizer"
    source = json.loads(json.dumps(source if source is not None else {"text": config.to_dict()["text"]}))
    if reuse and config.text.tokenizer == "train" and (saved / "vocab.txt").is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            if json.loads((saved / TOKENIZER_SOURCE).read_text(encoding="utf-8")) == source:
                return load_tokenizer(
                    saved, lowercase=config.text.lowercase
                )  # a resumed run keeps its vocabulary
    texts = [s["text"] for r in records for s in r["sentences"]]
    tokenizer = build_tokenizer(config.text, texts, saved)
    if config.text.tokenizer == "train":
        atomic_write_json(saved / TOKENIZER_SOURCE, source)
    return tokenizer


def tokens_vocab_hash(data: str | Path) -> str | None:
    """SHA-256 of the vocabulary file the tokens were made with, as their folder's manifest records it."""
    folder = token_file(data).parent
    if not (folder / MANIFEST).is_file():
        return None  # a token file written by other means: nothing to check against
    return read_manifest(folder).get("inputs", {}).get("vocab_file") or None


def trained_input(folder: Path, name: str) -> str | None:
    """The SHA-256 a pretrained model folder's manifest records for its input `name` ("tokens",
    "visual_vocab"); None when the folder has no manifest or the manifest no such input."""
    if not (folder / MANIFEST).is_file():
        return None
    return read_manifest(folder).get("inputs", {}).get(name)


def vocab_for_tokens(data: str | Path) -> Path:
    """The vocabulary the tokens in `data` were made with, where `vbert run` puts it (`../vocab/`)."""
    recorded = tokens_vocab_hash(data)
    beside = vocab_file_of(token_file(data).parent.parent / "vocab")
    if recorded and beside.is_file() and file_sha256(beside) == recorded:
        return beside
    raise DataError(
        f"{data}: pretrain.visual_init is 'centroids', which starts the visual rows from the "
        "vocabulary these tokens were made with, and it was not found beside them; give it with "
        "--vocab-file (or --set pretrain.visual_init=random)"
    )


def check_vocab_matches_tokens(vocab_file: str | Path, data: str | Path) -> None:
    """Refuse centroids from a vocabulary other than the one the tokens' manifest records."""
    recorded = tokens_vocab_hash(data)
    if recorded and file_sha256(vocab_file) != recorded:
        raise DataError(
            f"{vocab_file}: not the visual vocabulary the tokens in {token_file(data)} were made "
            "with (their manifest records another file); its centroids would describe other words"
        )


def load_centroids(vocab_file: str | Path | None) -> torch.Tensor | None:
    """Leaf centroids [K, D] of a saved hierarchical k-means, or None."""
    if vocab_file is None:
        return None
    return HierarchicalKMeans.load(vocab_file, device="cpu").leaf_centroids.float()


def run_pretraining(
    config: Config,
    data: str | Path,
    out_dir: str | Path,
    *,
    resume: str = "auto",
    device: str | None = None,
    vocab_file: str | Path | None = None,
    callbacks: tuple = (),
) -> TrainResult:
    """Check the inputs, build model and batches, train (resuming when possible), save the final model."""
    pcfg, out_dir = config.pretrain, Path(out_dir)
    tokens = token_file(data)
    visual_size = config.vocab.k**config.vocab.depth
    records = read_token_file(
        tokens, visual_size, ("training",)
    )  # refuses missing, empty, foreign-vocabulary files
    if pcfg.visual_init == "centroids" and vocab_file is not None:
        check_vocab_matches_tokens(vocab_file, tokens)
    dist, dev = init_distributed(select_device(device))
    per_rank = dist.world_size * pcfg.grad_accum
    if pcfg.batch_size % per_rank:
        raise ConfigError(
            f"pretrain.batch_size {pcfg.batch_size} is not divisible by world size "
            f"{dist.world_size} x grad_accum {pcfg.grad_accum}"
        )
    if pcfg.max_seq_len > config.model.max_position_embeddings:
        raise ConfigError(
            f"pretrain.max_seq_len {pcfg.max_seq_len} exceeds model.max_position_embeddings "
            f"{config.model.max_position_embeddings}"
        )
    if resume == "require" and not (out_dir / "checkpoints" / "latest.json").is_file():
        raise DataError(f"{out_dir}: nothing to resume, no checkpoint in {out_dir / 'checkpoints'}")
    tokens_sha = file_sha256(tokens)
    recipe = training_recipe(
        config, tokens_sha, file_sha256(vocab_file) if centroids_used(config, vocab_file) else None
    )
    source = {"text": recipe["text"], "tokens": tokens_sha}
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        tokenizer = prepare_tokenizer(config, records, out_dir, reuse=resume != "never", source=source)
    if dist.enabled:
        torch.distributed.barrier()  # rank 0 trained the tokenizer; the others load it
        if not dist.is_main:
            tokenizer = prepare_tokenizer(config, records, out_dir, source=source)
    vocab = JointVocab.from_tokenizer(tokenizer, visual_size)
    videos = tokenize_records(records, tokenizer)
    builder = ExampleBuilder(videos, vocab, pcfg, source=str(tokens))
    centroids = load_centroids(vocab_file) if pcfg.visual_init == "centroids" else None
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = build_videobert(config, vocab, centroids)
    batches = PretrainBatches(
        builder,
        pcfg.batch_size // per_rank,
        seed=config.seed,
        rank=dist.rank,
        num_workers=pcfg.num_workers,
        pin_memory=dev.type == "cuda",
        grad_accum=pcfg.grad_accum,
    )
    identity = {
        "model": dataclasses.asdict(model.config),
        "vocab": vocab.to_dict(),
        "max_seq_len": pcfg.max_seq_len,
    }
    trainer = Trainer(
        model,
        pcfg,
        out_dir,
        batches,
        device=dev,
        seed=config.seed,
        identity=identity,
        recipe=recipe,
        resume=resume,
        callbacks=callbacks,
    )
    result = trainer.fit()
    if dist.is_main:
        save_pretrained(model, vocab, tokenizer, out_dir)
        inputs = {"tokens": tokens_sha}
        visual_vocab = tokens_vocab_hash(tokens)  # the vocabulary file its words come from, for later checks
        if visual_vocab:
            inputs["visual_vocab"] = visual_vocab
        write_manifest(
            out_dir,
            "pretrain",
            config.to_dict(),
            inputs=inputs,
            outputs={
                name: file_sha256(out_dir / name)
                for name in (WEIGHTS, "bert_config.json", "joint_vocab.json")
            },
            steps=result.step,
            final=result.history[-1] if result.history else {},
            recipe_hash=json_hash(recipe),
        )
    return result


def centroids_used(config: Config, vocab_file: str | Path | None) -> bool:
    """True when the visual rows start from the centroids of `vocab_file`."""
    return config.pretrain.visual_init == "centroids" and vocab_file is not None


def trained_with(folder: Path, recipe: dict[str, Any]) -> bool:
    """True when `folder` holds a finished pretraining of `recipe` (settings that only run it may differ)."""
    if not is_complete(folder):
        return False
    return read_manifest(folder).get("recipe_hash") == json_hash(recipe)


def pretrain_key(config: Config) -> dict[str, Any]:
    """What decides a pretrained model besides its tokens and centroids (the stage cache's key)."""
    data = result_config(config)
    key = {k: data[k] for k in ("seed", "text", "model", "pretrain")}
    if config.text.tokenizer == "train":
        key["wordpiece_trainer"] = WORDPIECE_TRAINER_VERSION  # a trained vocabulary changes the model's ids
    return key


def run_stage(config: Config, inputs: dict[str, Path], out: Path, force: bool) -> dict[str, Any]:
    """The "pretrain" stage: VideoBERT pretrained on the "tokenize" stage's tokens, into `out`."""
    vocab_file = vocab_file_of(inputs["vocab"]) if config.pretrain.visual_init == "centroids" else None
    tokens = token_file(inputs["tokenize"])
    if not force and tokens.is_file():
        centroids = (
            file_sha256(vocab_file) if centroids_used(config, vocab_file) and vocab_file.is_file() else None
        )
        if trained_with(out, training_recipe(config, file_sha256(tokens), centroids)):
            return {"skipped": "complete", "folder": str(out)}
    # changed settings or tokens: checkpoints of this recipe (an interrupted run) continue, others start over
    result = run_pretraining(
        config, tokens, out, resume="never" if force else "if-same", vocab_file=vocab_file
    )
    last = result.history[-1] if result.history else {}
    return {
        "steps": result.step,
        "loss": round(last.get("loss", float("nan")), 4),
        "align_acc": round(last.get("align_acc", float("nan")), 3),
    }


# keep this after the "tokenize" stage
STAGE = Stage(
    "pretrain",
    "joint VideoBERT pretraining: three regimes (vbert.pretraining)",
    run_stage,
    needs=(TOKENIZE, VOCAB),
    key=pretrain_key,
    code=("vbert.pretraining", "vbert.bert"),
    checks_inputs=True,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert pretrain`."""
    add_config_arguments(parser)
    parser.add_argument(
        "--data", default=None, help="tokens.jsonl or its folder (default: build/reuse the preset's)"
    )
    parser.add_argument("--out", default="runs/pretrain", help="run folder (default: runs/pretrain)")
    parser.add_argument(
        "--vocab-file",
        default=None,
        help="visual vocabulary (.safetensors, or the folder of `vbert vocab`) for visual_init=centroids",
    )
    parser.add_argument("--device", default=None, help="auto, cpu, cuda (torchrun assigns cuda:LOCAL_RANK)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="require a checkpoint in --out and continue it, also under changed settings",
    )
    group.add_argument("--fresh", action="store_true", help="remove the checkpoints in --out and start over")


def main(args: argparse.Namespace) -> int:
    """Run `vbert pretrain` from the command line."""
    config = config_from_args(args)
    preset = Resolver(config)  # the preset's own artifacts, each built once, in the stage cache
    data = args.data
    if data is None:
        data = preset.folder(TOKENIZE)
    vocab_path = (
        vocab_file_of(args.vocab_file) if args.vocab_file is not None else None
    )  # the file, or its folder
    if vocab_path is None and config.pretrain.visual_init == "centroids":
        # the preset's own tokens come with the preset's own vocabulary; other tokens, with theirs
        vocab_path = vocab_file_of(preset.folder(VOCAB)) if args.data is None else vocab_for_tokens(data)
    resume = "require" if args.resume else "never" if args.fresh else "auto"
    result = run_pretraining(config, data, args.out, resume=resume, device=args.device, vocab_file=vocab_path)
    last = result.history[-1] if result.history else {}
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one line from the main process
        print(
            f"pretrained {result.step} steps: loss {last.get('loss', float('nan')):.4f}; model in {args.out}"
        )
    return 0
