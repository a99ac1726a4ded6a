"""Where the tasks find their inputs: the stage cache (notebooks, `vbert eval`) or a `vbert run` folder.

From the cache every artifact is built on first use (`vbert.core.stages.resolve`); from a run folder the stages' outputs are read (`synthcook/`, `features/`,
`vocab/`, `tokenize/`, `pretrain/`), and the text-only BERT of Table 1 is trained into
`eval/text-only-bert/` by the same pretraining code. Folders given explicitly (`paths`, e.g. the
outputs of `vbert tokenize` and `vbert pretrain` on YouCook2) take precedence over both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vbert.config import Config, PretrainConfig
from vbert.core.manifest import cached_stage, file_lock, file_sha256
from vbert.core.run_folder import run_folder_of
from vbert.core.stages import code_digest, resolve
from vbert.data.synthcook.generate import STAGE as GENERATE
from vbert.errors import DataError
from vbert.features.extract import STAGE as EXTRACT
from vbert.pretraining.data import regime_counts
from vbert.pretraining.joint_vocab import JointVocab
from vbert.pretraining.saved import load_pretrained
from vbert.pretraining.stage import STAGE as PRETRAIN
from vbert.pretraining.stage import (
    run_pretraining,
    tokens_vocab_hash,
    trained_input,
    trained_with,
    training_recipe,
)
from vbert.pretraining.videobert import VideoBertForPretraining
from vbert.visual_words.token_file import token_file, tokens_visual_size
from vbert.visual_words.tokenize import STAGE as TOKENIZE
from vbert.visual_words.vocab import STAGE as VOCAB

# The command-line option that names each artifact folder (`vbert eval`), for error messages.
OPTIONS = {
    "tokens": "--tokens",
    "features": "--features",
    "pretrained": "--model",
    "text_only": "--text-model",
}


EVAL_DIR = "eval"  # the evaluate stage's folder in a `vbert run` folder
TEXT_ONLY_DIR = "text-only-bert"  # the text-only BERT of Table 1, inside it


class Artifacts:
    """Paths of the data, features, visual words and models of one config (cache or run folder).

    Given tokens fix the data: the other folders are then read from the `vbert run` folder the
    tokens sit in, or must be given too; they are never built from the preset's own SynthCook,
    which would be other videos and other words. A model given from a `vbert run` folder (and no
    tokens) brings that folder's tokens, features and text-only BERT with it.
    """

    NAMES = ("tokens", "features", "vocab", "videos", "pretrained", "text_only")

    def __init__(
        self,
        config: Config,
        run_dir: str | Path | None = None,
        step: int | None = None,
        text_only_dir: str | Path | None = None,
        captioner_dir: str | Path | None = None,
        **paths: str | Path | None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.text_only_dir = Path(text_only_dir) if text_only_dir is not None else None  # where to train it
        # where captioning keeps its "VideoBERT + clip features" captioner (None: nowhere)
        self.captioner_dir = Path(captioner_dir) if captioner_dir is not None else None
        self.step = step  # evaluate VideoBERT as it was at this training step (a kept checkpoint)
        unknown = set(paths) - set(self.NAMES)
        if unknown:
            raise TypeError(f"unknown artifact(s) {sorted(unknown)}; known: {', '.join(self.NAMES)}")
        self.paths = {k: Path(v) for k, v in paths.items() if v is not None}
        for name, path in self.paths.items():
            if not path.exists():
                raise DataError(f"{path}: the {name.replace('_', '-')} folder given does not exist")
        if self.run_dir is None:  # given tokens (else a given model) may sit in a `vbert run` folder
            if "tokens" in self.paths:
                self.run_dir = run_folder_of(self.paths["tokens"], "tokenize")  # None: tokens from elsewhere
            elif "pretrained" in self.paths:
                self.run_dir = run_folder_of(self.paths["pretrained"], "pretrain")

    def _given_tokens_only(self, name: str) -> None:
        """Refuse to fall back on the preset's cache for `name` when the tokens were given elsewhere."""
        if "tokens" in self.paths and self.run_dir is None:
            option = OPTIONS.get(name, name)
            raise DataError(
                f"{self.paths['tokens']}: tokens given from outside a `vbert run` folder, so the "
                f"{name.replace('_', ' ')} folder cannot be the preset's own: give it with {option}"
            )

    def _stage(self, name: str) -> Path:
        assert self.run_dir is not None
        folder = self.run_dir / name
        if not folder.is_dir():
            raise DataError(f"{folder}: not found; run the pipeline's '{name}' stage first")
        return folder

    def tokens(self) -> Path:
        """Folder holding tokens.jsonl."""
        if "tokens" in self.paths:
            return self.paths["tokens"]
        if self.run_dir is not None:
            return self._stage("tokenize")

        return resolve(TOKENIZE, self.config)

    def features(self) -> Path:
        """Clip features folder."""
        if "features" in self.paths:
            return self.paths["features"]
        if self.run_dir is not None:
            return self._stage("features")
        self._given_tokens_only("features")

        return resolve(EXTRACT, self.config)

    def vocab(self) -> Path:
        """Visual vocabulary folder."""
        if "vocab" in self.paths:
            return self.paths["vocab"]
        if self.run_dir is not None:
            return self._stage("vocab")
        self._given_tokens_only("vocab")

        return resolve(VOCAB, self.config)

    def videos(self) -> Path:
        """SynthCook (or YouCook2-format) folder with videos/ and annotations.json."""
        if "videos" in self.paths:
            return self.paths["videos"]
        if self.run_dir is not None:
            return self._stage("synthcook")
        self._given_tokens_only("videos")

        return resolve(GENERATE, self.config)

    def pretrained(self) -> Path:
        """Finished VideoBERT pretraining folder."""
        if "pretrained" in self.paths:
            return self.paths["pretrained"]
        if self.run_dir is not None:
            return self._stage("pretrain")
        self._given_tokens_only("pretrained")

        return resolve(PRETRAIN, self.config)

    def load_videobert(self, device: str) -> tuple[VideoBertForPretraining, JointVocab, Any]:
        """(VideoBERT model, joint vocabulary, tokenizer): the finished model, or its checkpoint of `step`."""
        loaded = load_pretrained(self.pretrained(), device, step=self.step)
        self._check_model_reads_tokens(loaded[1].visual_size)
        return loaded

    def _check_model_reads_tokens(self, visual_size: int) -> None:
        """Refuse a model whose visual words are not those the tokens were made with."""
        model, tokens = self.pretrained(), token_file(self.tokens())
        theirs = tokens_visual_size(tokens.parent)
        if theirs is not None and theirs != visual_size:
            raise DataError(
                f"{model}: the model knows {visual_size} visual words, but the tokens in {tokens} were "
                f"made with a vocabulary of {theirs}; evaluate it on tokens of its own vocabulary"
            )
        trained = trained_input(model, "visual_vocab")
        made = tokens_vocab_hash(tokens)
        if trained and made and trained != made:
            raise DataError(
                f"{model}: pretrained on visual words of another vocabulary file than the one the tokens "
                f"in {tokens} were made with (same size, other clusters): its word ids mean other clips"
            )

    def text_only(self) -> Path:
        """A BERT pretrained on the same narrations with text-only masked prediction (Table 1)."""
        if "text_only" in self.paths:
            return self.paths["text_only"]

        config = text_only_config(self.config)
        out = self.text_only_dir
        if out is None and self.run_dir is not None:
            out = self.run_dir / EVAL_DIR / TEXT_ONLY_DIR
        if out is None and "tokens" in self.paths:
            return self._text_only_on_given_tokens(config)
        if out is None:
            return resolve(PRETRAIN, config)
        self._check_model_trained_on_tokens()
        tokens = token_file(self.tokens())
        if not tokens.is_file():
            raise DataError(f"{tokens}: token file not found (run `vbert tokenize` first)")
        # one trainer at a time: `vbert run` starts it beside pretraining, and the evaluate stage waits
        with file_lock(out.parent / f".{out.name}.lock"):
            if not text_only_trained(self.config, tokens, out):
                # checkpoints of the same recipe (killed part-way) continue; of another recipe, start over
                run_pretraining(config, self.tokens(), out, resume="if-same")
        return out

    def _check_model_trained_on_tokens(self) -> None:
        """The text-only BERT is trained on the tokens: refuse when the model given saw other ones."""
        model = self.paths.get("pretrained")
        if model is None:
            return
        trained_on = trained_input(model, "tokens")
        if trained_on and trained_on != file_sha256(token_file(self.tokens())):
            raise DataError(
                f"{model}: this model was pretrained on other tokens than {self.tokens()}, so a "
                "text-only BERT trained on these would not be its baseline: give the one trained on "
                "the model's own narrations with --text-model"
            )

    def _text_only_on_given_tokens(self, config: Config) -> Path:
        """Text-only BERT of given tokens (no run folder): trained once, cached by their hash and code."""
        self._check_model_trained_on_tokens()
        tokens = self.tokens()
        key = {
            "config": config.to_dict(),
            "tokens": file_sha256(token_file(tokens)),
            "code": code_digest(PRETRAIN.code),  # other training code trains it anew
        }
        return cached_stage("text-only", key, lambda folder: run_pretraining(config, tokens, folder))


def text_only_config(config: Config) -> Config:
    """The same config with pretraining on text alone (the text-only BERT of Table 1).

    It trains on as many masked sentences as VideoBERT predicted words of (`masked_text_steps`), so
    that the two priors of Table 1 differ in what the model saw beside the text, not in how much text.
    Its visual rows are never trained, so they start random whatever `visual_init` says.
    """
    steps = masked_text_steps(config.pretrain)
    pretrain = dataclasses.replace(
        config.pretrain,
        steps=steps,
        warmup_steps=min(config.pretrain.warmup_steps, steps),
        regime_mix=(1.0, 0.0, 0.0),
        alignment_share=0.0,
        visual_init="random",
    )
    return dataclasses.replace(config, pretrain=pretrain)


def text_only_trained(config: Config, tokens: str | Path, folder: Path) -> bool:
    """Whether `folder` holds the text-only BERT of `config` trained to the end on these tokens."""
    path = token_file(tokens)
    return path.is_file() and trained_with(
        folder, training_recipe(text_only_config(config), file_sha256(path))
    )


def masked_text_steps(pretrain: PretrainConfig) -> int:
    """Steps of text-only batches that hold as many masked sentences as VideoBERT's pretraining.

    A VideoBERT batch masks the text of its text-only examples and of its video-text pairs, except
    the alignment pairs that `mask_alignment_pairs: false` leaves whole (drawn from
    `alignment_from_step` on). The tiny preset: 900 steps of masked pairs, then 1,500 steps in which
    a quarter of them are masked, so 900 + 1,500 x 0.25 = 1,275 steps.
    """
    text, video, joint = regime_counts(pretrain.batch_size, pretrain.regime_mix)
    unmasked = 0.0 if pretrain.mask_alignment_pairs else pretrain.alignment_share
    before = min(max(pretrain.alignment_from_step, 0), pretrain.steps)
    sentences = before * (text + joint) + (pretrain.steps - before) * (text + joint * (1.0 - unmasked))
    return max(1, round(sentences / pretrain.batch_size))
