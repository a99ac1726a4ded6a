"""A finished run, opened for describing new videos: everything read and checked once.

Describing a video needs what a run made: its config (frame rate, clip length, crop, extractor,
sentence length, zero-shot template), its visual vocabulary, its pretrained VideoBERT, the verb and
noun label sets of its annotations, and the captioner Table 3 trains. `open_run` reads them from a
`vbert run` folder (default `runs/demo`, what `make demo` writes; the captioner its evaluate stage
kept in `eval/captioner/`) or, given a `Config`, from the stage cache, as the notebooks do (the
captioner then comes from `vbert.tasks.captioner_stage`, trained once). It refuses, with one line
naming the file, a folder that is not a finished run, a run without a trained model, a vocabulary the
model was not trained on, or features made with other extractor weights than the config names. A
run folder without a captioner still describes videos, without captions, and
`FinishedRun.captioner_missing` says why.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vbert.config import Config, load_config
from vbert.core.manifest import MANIFEST, file_sha256, read_json, read_manifest
from vbert.core.run_folder import artifact_identity
from vbert.core.stages import resolve
from vbert.errors import DataError
from vbert.features.extract import SPEC_FILE, extraction_spec
from vbert.features.extractors import Extractor, build_extractor
from vbert.pretraining.joint_vocab import JointVocab
from vbert.pretraining.stage import trained_input
from vbert.pretraining.videobert import VideoBertForPretraining
from vbert.tasks.artifacts import Artifacts
from vbert.tasks.captioner_file import CAPTIONER_DIR, FILES, SavedCaptioner, load_captioner
from vbert.tasks.captioner_stage import STAGE as CAPTIONER
from vbert.tasks.data import load_segments, with_labels
from vbert.tasks.stage import STAGE as EVALUATE
from vbert.tasks.zero_shot import LabelSet, encode_labels
from vbert.visual_words.kmeans import HierarchicalKMeans
from vbert.visual_words.vocab import load_vocab, vocab_file

DEFAULT_RUN = Path("runs/demo")  # what `make demo` writes


@dataclass
class FinishedRun:
    """What describing a video needs from one finished run (a run folder, or a config's stage cache)."""

    folder: Path | None  # the `vbert run` folder (None: the stage cache)
    config: Config
    model: VideoBertForPretraining
    vocab: JointVocab
    tokenizer: Any
    tree: HierarchicalKMeans
    extractor: Extractor
    verbs: LabelSet
    nouns: LabelSet
    videos: Path | None  # the run's dataset folder (SynthCook: videos/ inside), when there is one
    tokens: Path  # the run's token folder (its dataset's videos as visual words)
    features: Path  # the run's features folder
    captioner: SavedCaptioner | None
    captioner_missing: str | None  # why there is no captioner (None when there is one)
    cache: dict[str, Any] = field(default_factory=dict)  # embeddings of the run's videos, computed once

    @property
    def name(self) -> str:
        """The run folder, or "the stage cache of preset NAME"."""
        return (
            str(self.folder) if self.folder is not None else f"the stage cache of preset {self.config.name}"
        )

    @property
    def alignment_trained(self) -> bool:
        """Whether pretraining trained the alignment head: alignment pairs, drawn before its last step."""
        p = self.config.pretrain
        return (
            p.alignment_share > 0
            and len(p.regime_mix) > 2
            and p.regime_mix[2] > 0
            and p.alignment_from_step < p.steps
        )


def rerun(folder: Path | None, options: str = "") -> str:
    """Advice naming the command that runs a run folder's pipeline again, with the folder's own config."""
    if folder is None:
        return (
            "build it again in the stage cache (remove that folder; `vbert.core.stages.resolve` remakes it)"
        )
    return f"run `vbert run --preset {folder / 'config.yaml'} --out {folder}{options}`"


def _check_folder(folder: Path, default: bool) -> None:
    hint = "run `make demo` to make it, or name a folder made by `vbert run` with --run"
    if not folder.exists():
        where = "the default run folder is not there" if default else "no run folder here"
        raise DataError(f"{folder}: {where}; {hint}")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (expected a run folder made by `vbert run`)")
    if not (folder / "config.yaml").is_file():
        raise DataError(f"{folder}: not a `vbert run` folder (no config.yaml); {hint}")
    for name in ("videobert.safetensors", "bert_config.json", "joint_vocab.json"):
        if not (folder / "pretrain" / name).is_file():
            raise DataError(
                f"{folder / 'pretrain' / name}: missing, so this run has no trained model; "
                f"{rerun(folder)} to finish it"
            )


def _check_vocabulary(
    vocab_dir: Path, pretrain: Path, tree: HierarchicalKMeans, vocab: JointVocab, advice: str
) -> None:
    """The run's vocabulary must be the one the model learnt its visual words from."""
    file = vocab_file(vocab_dir)
    if tree.vocab_size != vocab.visual_size:
        raise DataError(
            f"{file}: {tree.vocab_size} visual words, but the model in {pretrain} knows {vocab.visual_size}: "
            f"the vocabulary is from another run or was fitted again after pretraining; {advice} to pretrain on it"
        )
    trained_on = trained_input(pretrain, "visual_vocab")
    if trained_on and trained_on != file_sha256(file):
        raise DataError(
            f"{file}: not the vocabulary the model in {pretrain} was trained on (another vocabulary of the same "
            f"size: its word ids mean other clips); {advice} to pretrain on it"
        )


def _check_extractor(features: Path, config: Config, advice: str) -> None:
    """The extractor the config names must be the one that made the run's features."""
    path = features / SPEC_FILE
    if path.is_file() and read_json(path) != extraction_spec(config):
        raise DataError(
            f"{path}: the run's features were made with other decoding settings or extractor weights than "
            f"its config names now, so new videos would get words of another kind; {advice} again"
        )


def _kept_captioner(folder: Path, device: torch.device) -> tuple[SavedCaptioner | None, str | None]:
    """The captioner a run folder's evaluate stage kept, or None and why there is none."""
    again = f"{rerun(folder)} again to train and keep it"
    eval_dir = folder / EVALUATE.out
    if not (eval_dir / MANIFEST).is_file():
        return None, f"{eval_dir}: the evaluate stage has not run, so there is no captioner; {again}"
    manifest = read_manifest(eval_dir)
    outputs = manifest.get("outputs", {})
    names = [f"{CAPTIONER_DIR}/{name}" for name in FILES]
    if not all(name in outputs for name in names):
        return None, (
            f"{eval_dir / CAPTIONER_DIR}: no captioner recorded in {eval_dir / MANIFEST} (the captioning task "
            f"did not finish, or an older vbert made this run); {again}"
        )
    for name in names:
        if not (eval_dir / name).is_file() or file_sha256(eval_dir / name) != outputs[name]:
            return None, (
                f"{eval_dir / name}: missing or changed since the evaluate stage wrote it; "
                f"{rerun(folder, ' --only evaluate --force')} to make it again"
            )
    if manifest.get("inputs", {}).get("pretrain") != artifact_identity(folder / "pretrain"):
        return None, (
            f"{eval_dir / CAPTIONER_DIR}: trained on an earlier model (the pretrain stage ran again since); "
            f"{again}"
        )
    return load_captioner(eval_dir / CAPTIONER_DIR, device), None


def _label_sets(tokens: Path, tokenizer: Any) -> tuple[LabelSet, LabelSet]:
    """The run's verb and noun label sets, as Table 1 builds them (labels absent from the text vocabulary dropped)."""
    _, _, verbs, nouns = with_labels(
        load_segments(tokens, ("training",)), load_segments(tokens, ("validation",))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return encode_labels(verbs, tokenizer, "verb", True), encode_labels(nouns, tokenizer, "noun", True)


def open_run(run: str | Path | Config = DEFAULT_RUN, device: str | torch.device = "cpu") -> FinishedRun:
    """Read and check a finished `vbert run` folder (default: the one `make demo` writes), or a config's
    stage cache (built where missing, as the notebooks build it)."""
    device = torch.device(device)
    if isinstance(run, Config):
        folder, config = None, run
        artifacts = Artifacts(config)
    else:
        folder = Path(run)
        _check_folder(folder, folder == DEFAULT_RUN)
        config = load_config(folder / "config.yaml")
        artifacts = Artifacts(config, run_dir=folder)
    advice = rerun(folder)
    model, vocab, tokenizer = artifacts.load_videobert(str(device))  # refuses tokens of other visual words
    tree = load_vocab(artifacts.vocab(), artifacts.features(), device="cpu")
    _check_vocabulary(artifacts.vocab(), artifacts.pretrained(), tree, vocab, advice)
    _check_extractor(artifacts.features(), config, advice)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random-weight extractors warn; the run chose them
        extractor = build_extractor(config.features.extractor, config.features.weights, device, config.seed)
    verbs, nouns = _label_sets(artifacts.tokens(), tokenizer)
    if folder is not None:
        captioner, missing = _kept_captioner(folder, device)
    else:
        captioner, missing = load_captioner(resolve(CAPTIONER, config) / CAPTIONER_DIR, device), None
    return FinishedRun(
        folder, config, model, vocab, tokenizer, tree, extractor, verbs, nouns,
        folder / "synthcook" if folder is not None else artifacts.videos(), artifacts.tokens(),
        artifacts.features(), captioner, missing,
    )  # fmt: skip


def as_run(run: FinishedRun | Config | str | Path, device: str | torch.device = "cpu") -> FinishedRun:
    """`run` itself when already open, else `open_run(run, device)`."""
    return run if isinstance(run, FinishedRun) else open_run(run, device)
