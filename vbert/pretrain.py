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
recipe is unchanged, whatever the run-only settings say.
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

from vbert.checkpoint import checkpoint_at, load_checkpoint
from vbert.config import Config
from vbert.distributed import init_distributed
from vbert.errors import ConfigError, DataError
from vbert.manifest import (MANIFEST, atomic_write_json, cached_stage, file_sha256, is_complete, json_hash,
                            read_json, read_manifest, write_manifest)
from vbert.model import BertConfig
from vbert.pretrain_data import ExampleBuilder, JointVocab, PretrainBatches, read_token_file, tokenize_records
from vbert.train import Trainer, TrainResult
from vbert.videobert import VideoBertForPretraining, build_videobert

WEIGHTS = "videobert.safetensors"


def token_file(data: str | Path) -> Path:
    """The tokens.jsonl named by `data` (the file, or the folder holding it)."""
    path = Path(data)
    return path / "tokens.jsonl" if path.is_dir() else path


# Settings that decide how a run logs, saves and feeds the GPU, not what it learns: changing them
# neither makes a finished model stale nor stops a checkpoint from being continued.
RUN_ONLY_SETTINGS = ("keep_checkpoints", "log_every", "checkpoint_every", "num_workers", "tensorboard",
                     "compile", "compile_mode")
TOKENIZER_SOURCE = "vbert-source.json"  # beside a trained tokenizer: the settings and text it was trained on


def result_config(config: Config) -> dict[str, Any]:
    """The config as a dict without the settings that only run pretraining (`RUN_ONLY_SETTINGS`)."""
    data = config.to_dict()
    data["pretrain"] = {k: v for k, v in data["pretrain"].items() if k not in RUN_ONLY_SETTINGS}
    return data


def training_recipe(config: Config, tokens_sha: str, centroids_sha: str | None = None) -> dict[str, Any]:
    """What decides the trained weights: seed, text, model and training settings, the tokens (and centroids)."""
    data = result_config(config)
    recipe = {"seed": data["seed"], "text": data["text"], "model": data["model"], "pretrain": data["pretrain"],
              "tokens": tokens_sha}
    if centroids_sha is not None:
        recipe["centroids"] = centroids_sha
    return recipe


def prepare_tokenizer(config: Config, records: list[dict], out_dir: Path, reuse: bool = True,
                      source: dict[str, Any] | None = None) -> Any:
    """The text tokenizer: the BERT checkpoint's own, one saved in `out_dir` (when `reuse` and it was
    trained from the same `source`: text settings and token file), or a new one."""
    from vbert.text import build_tokenizer, load_tokenizer

    if config.model.init_from:
        return load_tokenizer(config.model.init_from, lowercase=config.text.lowercase)
    saved = out_dir / "tokenizer"
    source = json.loads(json.dumps(source if source is not None else {"text": config.to_dict()["text"]}))
    if reuse and config.text.tokenizer == "train" and (saved / "vocab.txt").is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            if json.loads((saved / TOKENIZER_SOURCE).read_text(encoding="utf-8")) == source:
                return load_tokenizer(saved, lowercase=config.text.lowercase)  # a resumed run keeps its vocabulary
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


def vocab_for_tokens(data: str | Path) -> Path:
    """The vocabulary the tokens in `data` were made with, where `vbert run` puts it (`../vocab/`)."""
    from vbert.visual_vocab import vocab_file

    recorded = tokens_vocab_hash(data)
    beside = vocab_file(token_file(data).parent.parent / "vocab")
    if recorded and beside.is_file() and file_sha256(beside) == recorded:
        return beside
    raise DataError(f"{data}: pretrain.visual_init is 'centroids', which starts the visual rows from the "
                    "vocabulary these tokens were made with, and it was not found beside them; give it with "
                    "--vocab-file (or --set pretrain.visual_init=random)")


def check_vocab_matches_tokens(vocab_file: str | Path, data: str | Path) -> None:
    """Refuse centroids from a vocabulary other than the one the tokens' manifest records."""
    recorded = tokens_vocab_hash(data)
    if recorded and file_sha256(vocab_file) != recorded:
        raise DataError(f"{vocab_file}: not the visual vocabulary the tokens in {token_file(data)} were made "
                        "with (their manifest records another file); its centroids would describe other words")


def load_centroids(vocab_file: str | Path | None) -> torch.Tensor | None:
    """Leaf centroids [K, D] of a saved hierarchical k-means, or None."""
    if vocab_file is None:
        return None
    from vbert.kmeans import HierarchicalKMeans

    return HierarchicalKMeans.load(vocab_file, device="cpu").leaf_centroids.float()


def run_pretraining(config: Config, data: str | Path, out_dir: str | Path, *, resume: str = "auto",
                    device: str | None = None, vocab_file: str | Path | None = None,
                    callbacks: tuple = ()) -> TrainResult:
    """Check the inputs, build model and batches, train (resuming when possible), save the final model."""
    from vbert.device import select_device

    pcfg, out_dir = config.pretrain, Path(out_dir)
    tokens = token_file(data)
    visual_size = config.vocab.k ** config.vocab.depth
    records = read_token_file(tokens, visual_size)  # refuses missing, empty, foreign-vocabulary files
    if pcfg.visual_init == "centroids" and vocab_file is not None:
        check_vocab_matches_tokens(vocab_file, tokens)
    dist, dev = init_distributed(select_device(device))
    per_rank = dist.world_size * pcfg.grad_accum
    if pcfg.batch_size % per_rank:
        raise ConfigError(f"pretrain.batch_size {pcfg.batch_size} is not divisible by world size "
                          f"{dist.world_size} x grad_accum {pcfg.grad_accum}")
    if pcfg.max_seq_len > config.model.max_position_embeddings:
        raise ConfigError(f"pretrain.max_seq_len {pcfg.max_seq_len} exceeds model.max_position_embeddings "
                          f"{config.model.max_position_embeddings}")
    if resume == "require" and not (out_dir / "checkpoints" / "latest.json").is_file():
        raise DataError(f"{out_dir}: nothing to resume, no checkpoint in {out_dir / 'checkpoints'}")
    tokens_sha = file_sha256(tokens)
    recipe = training_recipe(config, tokens_sha, file_sha256(vocab_file) if centroids_used(config, vocab_file) else None)
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
    batches = PretrainBatches(builder, pcfg.batch_size // per_rank, seed=config.seed, rank=dist.rank,
                              num_workers=pcfg.num_workers, pin_memory=dev.type == "cuda")
    identity = {"model": dataclasses.asdict(model.config), "vocab": vocab.to_dict(), "max_seq_len": pcfg.max_seq_len}
    trainer = Trainer(model, pcfg, out_dir, batches, device=dev, seed=config.seed, identity=identity,
                      recipe=recipe, resume=resume, callbacks=callbacks)
    result = trainer.fit()
    if dist.is_main:
        save_pretrained(model, vocab, tokenizer, out_dir)
        inputs = {"tokens": tokens_sha}
        visual_vocab = tokens_vocab_hash(tokens)  # the vocabulary file its words come from, for later checks
        if visual_vocab:
            inputs["visual_vocab"] = visual_vocab
        write_manifest(out_dir, "pretrain", config.to_dict(), inputs=inputs,
                       outputs={name: file_sha256(out_dir / name) for name in (WEIGHTS, "bert_config.json",
                                                                               "joint_vocab.json")},
                       steps=result.step,
                       final=result.history[-1] if result.history else {}, recipe_hash=json_hash(recipe))
    return result


def centroids_used(config: Config, vocab_file: str | Path | None) -> bool:
    """True when the visual rows start from the centroids of `vocab_file`."""
    return config.pretrain.visual_init == "centroids" and vocab_file is not None


def trained_with(folder: Path, recipe: dict[str, Any]) -> bool:
    """True when `folder` holds a finished pretraining of `recipe` (settings that only run it may differ)."""
    if not is_complete(folder):
        return False
    return read_manifest(folder).get("recipe_hash") == json_hash(recipe)


def save_pretrained(model: VideoBertForPretraining, vocab: JointVocab, tokenizer: Any, out_dir: Path) -> None:
    """Write the final weights (safetensors), configs, tokenizer and a transformers export."""
    from safetensors.torch import save_file

    from vbert.hf import export_hf

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS))
    atomic_write_json(out_dir / "bert_config.json", dataclasses.asdict(model.config))
    atomic_write_json(out_dir / "joint_vocab.json", vocab.to_dict())
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    export_hf(model.mlm, out_dir / "hf", tokenizer)


def load_pretrained(folder: str | Path, device: str | torch.device = "cpu",
                    step: int | None = None) -> tuple[VideoBertForPretraining, JointVocab, Any]:
    """A finished pretraining folder -> (model in eval mode, joint vocabulary, text tokenizer).

    With `step`, the weights are those of the folder's training checkpoint of that step (to follow a
    metric over training; `pretrain.keep_checkpoints` decides how many a run keeps).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from vbert.text import load_tokenizer

    folder = Path(folder)
    for name in (WEIGHTS, "bert_config.json", "joint_vocab.json"):
        if not (folder / name).is_file():
            raise DataError(f"{folder}: no {name} here (is this a finished `vbert pretrain` folder?)")
    if (folder / "manifest.json").is_file():
        from vbert.manifest import verify_outputs

        verify_outputs(folder)  # weights changed since training are refused, naming the file
    config = _from_json(BertConfig, folder / "bert_config.json")
    vocab = _from_json(JointVocab, folder / "joint_vocab.json")
    try:
        model = VideoBertForPretraining(config, vocab)
    except (TypeError, ValueError) as err:
        raise DataError(f"{folder}: bert_config.json and joint_vocab.json do not fit together ({err})") from None
    source = folder / WEIGHTS if step is None else checkpoint_at(folder, step)
    try:
        if step is None:
            model.load_state_dict(load_file(str(source)))
        else:
            state = load_checkpoint(source)
            if not isinstance(state, dict) or "model" not in state:
                raise DataError(f"{source}: not a vbert training checkpoint (no model state)")
            model.load_state_dict(state["model"])
    except SafetensorError as err:
        raise DataError(f"{source}: not a readable safetensors file ({err})") from None
    except (RuntimeError, OSError) as err:
        raise DataError(f"{source}: does not fit {folder / 'bert_config.json'} ({err})") from None
    return model.to(device).eval(), vocab, load_tokenizer(folder / "tokenizer")


def _from_json(cls: Any, path: Path) -> Any:
    """A dataclass built from a JSON file of its fields; a malformed file is a DataError naming it."""
    fields = read_json(path)
    try:
        return cls(**fields)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: not a valid {cls.__name__} ({err})") from None


def pretrain_key(config: Config, tokens: str | Path | None = None) -> dict[str, Any]:
    """The cache key of a pretrained model: its config sections and, given, the token file's SHA-256.

    The config alone does not identify the data: a new extractor checkpoint (or any change upstream)
    gives new visual words under the same config, and a model trained on the old ones would be
    evaluated on the new ones.
    """
    data = config.to_dict()
    key = {k: data[k] for k in ("seed", "data", "video", "features", "vocab", "text", "model", "pretrain")}
    if config.text.tokenizer == "train":
        from vbert.text import WORDPIECE_TRAINER_VERSION

        key["wordpiece_trainer"] = WORDPIECE_TRAINER_VERSION  # a trained vocabulary changes the model's ids
    if tokens is not None:
        key["tokens"] = file_sha256(token_file(tokens))
    return key


def _vocab_file(folder: Path) -> Path:
    from vbert.visual_vocab import vocab_file

    return vocab_file(folder)


def preset_centroids(config: Config) -> Path | None:
    """The config's own visual vocabulary file (built once, cached) for visual_init "centroids", else None."""
    if config.pretrain.visual_init != "centroids":
        return None
    from vbert.visual_vocab import ensure_vocab

    return _vocab_file(ensure_vocab(config))


def ensure_pretrained(config: Config) -> Path:
    """A pretrained VideoBERT for `config`, built once (tokens via `ensure_tokens`) and cached."""
    from vbert.visual_vocab import ensure_tokens

    tokens = ensure_tokens(config)
    vocab_file = preset_centroids(config)
    key = pretrain_key(config, tokens)
    if vocab_file is not None:
        key["centroids"] = file_sha256(vocab_file)
    return cached_stage(
        "pretrain", key, lambda folder: run_pretraining(config, tokens, folder, vocab_file=vocab_file)
    )


def pipeline_stage(config: Config, run_dir: Path, force: bool) -> dict[str, Any]:
    """The "pretrain" stage of `vbert run`: tokens of run_dir/tokenize -> run_dir/pretrain."""
    out = run_dir / "pretrain"
    vocab_file = _vocab_file(run_dir / "vocab") if config.pretrain.visual_init == "centroids" else None
    tokens = token_file(run_dir / "tokenize")
    if not force and tokens.is_file():
        centroids = file_sha256(vocab_file) if centroids_used(config, vocab_file) and vocab_file.is_file() else None
        if trained_with(out, training_recipe(config, file_sha256(tokens), centroids)):
            return {"skipped": "complete", "folder": str(out)}
    # changed settings or tokens: checkpoints of this recipe (an interrupted run) continue, others start over
    result = run_pretraining(config, run_dir / "tokenize", out, resume="never" if force else "if-same",
                             vocab_file=vocab_file)
    last = result.history[-1] if result.history else {}
    return {"steps": result.step, "loss": round(last.get("loss", float("nan")), 4),
            "align_acc": round(last.get("align_acc", float("nan")), 3)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert pretrain`."""
    from vbert.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--data", default=None, help="tokens.jsonl or its folder (default: build/reuse the preset's)")
    parser.add_argument("--out", default="runs/pretrain", help="run folder (default: runs/pretrain)")
    parser.add_argument("--vocab-file", default=None, help="visual vocabulary (.safetensors) for visual_init=centroids")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda (torchrun assigns cuda:LOCAL_RANK)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="require a checkpoint in --out and continue it, also under changed settings")
    group.add_argument("--fresh", action="store_true", help="remove the checkpoints in --out and start over")


def main(args: argparse.Namespace) -> int:
    """Run `vbert pretrain` from the command line."""
    from vbert.cli import config_from_args

    config = config_from_args(args)
    data = args.data
    if data is None:
        from vbert.visual_vocab import ensure_tokens

        data = ensure_tokens(config)
    vocab_path = args.vocab_file
    if vocab_path is None and config.pretrain.visual_init == "centroids":
        # the preset's own tokens come with the preset's own vocabulary; other tokens, with theirs
        vocab_path = preset_centroids(config) if args.data is None else vocab_for_tokens(data)
    resume = "require" if args.resume else "never" if args.fresh else "auto"
    result = run_pretraining(config, data, args.out, resume=resume, device=args.device, vocab_file=vocab_path)
    last = result.history[-1] if result.history else {}
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one line from the main process
        print(f"pretrained {result.step} steps: loss {last.get('loss', float('nan')):.4f}; model in {args.out}")
    return 0
