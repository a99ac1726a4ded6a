"""The paper's Table 1 (zero-shot verb/noun classification) and Table 2 (effect of data size).

Rows of Table 1, all on the same validation segments and label sets::

    text-only BERT, language prior   a BERT pretrained on the narrations alone, template only
    VideoBERT, language prior        the VideoBERT model, template only ([CLS] template [SEP])
    VideoBERT, cross-modal           template + [>] + the segment's visual words
    supervised probe on clips        logistic regression on the mean clip feature (the paper's
                                     supervised S3D row is a fully supervised network; ours is
                                     an upper bound of the same spirit, trained on training segments)

The text-only BERT is trained by the same pretraining code with `pretrain.regime_mix = [1, 0, 0]`
(only text-only masked prediction), on the same narrations, for as many masked sentences as
VideoBERT predicted words of (`vbert.tasks.artifacts.masked_text_steps`). Table 2 trains
VideoBERT on 25/50/100% of the training videos, each for the preset's steps (the same compute, so
that the rows differ in data only), and reports zero-shot top-5.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vbert.config import Config
from vbert.core.child import ChildProcess
from vbert.core.manifest import cached_folder, cached_stage, file_sha256, is_complete, write_manifest
from vbert.core.progress import progress
from vbert.core.stages import code_digest, resolve
from vbert.errors import DataError, VbertError
from vbert.features.store import FeatureStore
from vbert.pretraining.checkpoint import kept_steps
from vbert.pretraining.saved import load_pretrained
from vbert.pretraining.stage import STAGE as PRETRAIN
from vbert.pretraining.stage import pretrain_key, run_pretraining
from vbert.pretraining.trainer import read_metrics
from vbert.tasks.artifacts import Artifacts
from vbert.tasks.data import EvalSegment, load_segments, segment_features, with_labels
from vbert.tasks.zero_shot import (
    accuracy_table,
    encode_labels,
    label_indices,
    top_k_accuracy,
    zero_shot_scores,
)
from vbert.visual_words.token_file import read_token_file, token_file, write_token_file
from vbert.visual_words.tokenize import STAGE as TOKENIZE
from vbert.visual_words.vocab import STAGE as VOCAB
from vbert.visual_words.vocab import vocab_file


def zero_shot_row(
    model: Any,
    tokenizer: Any,
    vocab: Any,
    segments: Sequence[EvalSegment],
    template: str,
    verbs: Sequence[str],
    nouns: Sequence[str],
    with_video: bool = True,
    max_len: int = 128,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Zero-shot top-k accuracy (percent) of a VideoBertForPretraining or BertForMaskedLM."""
    mlm = getattr(model, "mlm", model)
    verb_set = encode_labels(verbs, tokenizer, "verb")
    noun_set = encode_labels(nouns, tokenizer, "noun")
    videos = [s.video_words if with_video else None for s in segments]
    scores = zero_shot_scores(mlm, tokenizer, vocab, template, videos, verb_set, noun_set, max_len=max_len)
    return accuracy_table(scores, [s.verb for s in segments], [s.noun for s in segments], ks)


def probe_row(
    train_x: np.ndarray,
    train_segments: Sequence[EvalSegment],
    test_x: np.ndarray,
    test_segments: Sequence[EvalSegment],
    verbs: Sequence[str],
    nouns: Sequence[str],
    ks: Sequence[int] = (1, 5),
    seed: int = 0,
) -> dict[str, float]:
    """Supervised upper bound: logistic regression on pooled clip features [N, D]; top-k (percent)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict[str, float] = {}
    for kind, names in (("verb", verbs), ("noun", nouns)):
        y_train = label_indices([getattr(s, kind) for s in train_segments], names)
        y_test = label_indices([getattr(s, kind) for s in test_segments], names)
        keep_train, keep_test = y_train >= 0, y_test >= 0
        if len(set(y_train[keep_train].tolist())) < 2:
            raise VbertError(f"the supervised probe needs training segments of at least two {kind}s")
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000, random_state=seed))
        probe.fit(train_x[keep_train].astype(np.float64), y_train[keep_train])
        proba = probe.predict_proba(test_x[keep_test].astype(np.float64))  # [N, seen classes]
        scores = np.full((len(proba), len(names)), -np.inf)
        scores[:, probe.classes_] = proba
        for k in ks:
            out[f"{kind} top-{k}"] = 100.0 * top_k_accuracy(scores, y_test[keep_test], k)
    return out


def chance_row(verbs: Sequence[str], nouns: Sequence[str], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Accuracy of a uniform random guess (percent)."""
    out = {}
    for kind, names in (("verb", verbs), ("noun", nouns)):
        for k in ks:
            out[f"{kind} top-{k}"] = 100.0 * min(1.0, k / len(names))
    return out


def videobert_rows(
    model: Any,
    vocab: Any,
    tokenizer: Any,
    segments: Sequence[EvalSegment],
    verbs: Sequence[str],
    nouns: Sequence[str],
    config: Config,
) -> dict[str, dict[str, float]]:
    """Table 1's two VideoBERT rows: the language prior (text alone), then cross-modal (with the video)."""
    template, ks, max_len = config.eval.zero_shot_template, config.eval.top_k, config.pretrain.max_seq_len
    return {
        name: zero_shot_row(
            model,
            tokenizer,
            vocab,
            segments,
            template,
            verbs,
            nouns,
            with_video=video,
            max_len=max_len,
            ks=ks,
        )
        for name, video in (("VideoBERT, language prior", False), ("VideoBERT, cross-modal", True))
    }


def table1(
    config: Config, device: str = "cpu", with_probe: bool = True, artifacts: Any = None
) -> dict[str, Any]:
    """Table 1 on the config's data (`artifacts`: cache or run folder); returns rows and label sets."""
    artifacts = artifacts or Artifacts(config)
    tokens = artifacts.tokens()
    train, val, verbs, nouns = with_labels(
        load_segments(tokens, ("training",)), load_segments(tokens, ("validation",))
    )
    template, ks = config.eval.zero_shot_template, config.eval.top_k
    max_len = config.pretrain.max_seq_len
    rows: dict[str, dict[str, float]] = {"chance": chance_row(verbs, nouns, ks)}
    bert, bert_vocab, bert_tok = load_pretrained(artifacts.text_only(), device)
    rows["text-only BERT, language prior"] = zero_shot_row(
        bert, bert_tok, bert_vocab, val, template, verbs, nouns, with_video=False, max_len=max_len, ks=ks
    )
    rows.update(videobert_rows(*artifacts.load_videobert(device), val, verbs, nouns, config))
    if with_probe:
        store = FeatureStore(artifacts.features())
        pooled_train = np.stack([f.mean(0) for f in segment_features(store, train)])
        pooled_val = np.stack([f.mean(0) for f in segment_features(store, val)])
        rows["supervised probe on clip features"] = probe_row(
            pooled_train, train, pooled_val, val, verbs, nouns, ks, config.seed
        )
    return {"rows": rows, "verbs": verbs, "nouns": nouns, "num_segments": len(val)}


def zero_shot_by_step(config: Config, device: str = "cpu", artifacts: Any = None) -> dict[str, Any]:
    """Table 1's VideoBERT rows at every training checkpoint the pretraining folder kept: has it settled?"""
    artifacts = artifacts or Artifacts(config)
    folder = artifacts.pretrained()
    steps = kept_steps(folder)
    if not steps:
        raise DataError(
            f"{folder}: no training checkpoints kept (pretrain.keep_checkpoints sets how many a run keeps)"
        )
    tokens = artifacts.tokens()
    _, val, verbs, nouns = with_labels(
        load_segments(tokens, ("training",)), load_segments(tokens, ("validation",))
    )
    rows = [
        {
            "step": step,
            **videobert_rows(*load_pretrained(folder, device, step=step), val, verbs, nouns, config),
        }
        for step in steps
    ]
    return {
        "rows": rows,
        "chance": chance_row(verbs, nouns, config.eval.top_k),
        "verbs": verbs,
        "nouns": nouns,
        "num_segments": len(val),
    }


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Rows of percentages as a Markdown table."""
    columns = list(next(iter(rows.values())))
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += [
        f"| {name} | " + " | ".join(f"{row[c]:.1f}" for c in columns) + " |" for name, row in rows.items()
    ]
    return "\n".join(lines)


def subset_token_file(tokens: str | Path, fraction: float, out_dir: str | Path, seed: int = 0) -> Path:
    """A token file keeping a random `fraction` of the training videos and every other video."""
    tokens = Path(tokens)
    records = read_token_file(tokens)
    train = [i for i, r in enumerate(records) if r.get("subset", "training") == "training"]
    keep_n = max(1, round(fraction * len(train)))
    chosen = set(np.random.default_rng(seed).permutation(train)[:keep_n].tolist())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = [r for i, r in enumerate(records) if i in chosen or r.get("subset", "training") != "training"]
    path = write_token_file(out_dir, kept)
    manifest = (tokens if tokens.is_dir() else tokens.parent) / "manifest.json"
    if manifest.is_file():  # keeps the vocabulary check of the pretraining reader
        (out_dir / "manifest.json").write_text(manifest.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _last_logged_step(model_dir: Path) -> int:
    """The last step a training run logged in `model_dir` (0 before its first log)."""
    rows = read_metrics(model_dir)
    return rows[-1]["step"] if rows else 0


def _fraction_inputs(config: Config) -> tuple[Path, Path | None]:
    """The tokens a data-size model subsamples, and the centroids its visual rows start from."""
    centroids = vocab_file(resolve(VOCAB, config)) if config.pretrain.visual_init == "centroids" else None
    return resolve(TOKENIZE, config), centroids


def _fraction_key(config: Config, fraction: float, tokens: Path, centroids: Path | None) -> dict[str, Any]:
    """What decides the model of a fraction of the training videos (its stage cache key)."""
    return {
        **pretrain_key(config),
        "tokens": file_sha256(token_file(tokens)),
        "code": code_digest(PRETRAIN.code),
        "fraction": fraction,
        "centroids": file_sha256(centroids) if centroids else None,
    }


def _fraction_model(
    config: Config, fraction: float, tokens: Path, centroids: Path | None, key: dict[str, Any]
) -> Path:
    """The cached model pretrained on `fraction` of the training videos (trained first when missing)."""

    def build(folder: Path) -> None:
        data = subset_token_file(tokens, fraction, folder / "data", seed=config.seed)
        run_pretraining(config, data, folder / "model", vocab_file=centroids)
        write_manifest(folder, "data-size", {"fraction": fraction, "steps": config.pretrain.steps})

    return cached_stage("data-size", key, build) / "model"


def _fraction_models(config: Config, fractions: Sequence[float]) -> dict[float, Path]:
    """The models of `fractions`, those not cached yet trained side by side, one child process each.

    Each child trains what this process would (same code, same thread count), so the models are the
    same as trained one after the other; a progress bar follows their logged steps.
    """
    tokens, centroids = _fraction_inputs(config)
    keys = {fraction: _fraction_key(config, fraction, tokens, centroids) for fraction in fractions}
    folders = {fraction: cached_folder("data-size", key) for fraction, key in keys.items()}
    models = {fraction: folder / "model" for fraction, folder in folders.items() if is_complete(folder)}
    missing = [fraction for fraction in fractions if fraction not in models]
    if not missing:
        return models
    with contextlib.ExitStack() as stack:
        children = {
            fraction: stack.enter_context(
                ChildProcess(
                    _fraction_model,
                    config,
                    fraction,
                    tokens,
                    centroids,
                    keys[fraction],
                    name=f"data-size model, {100 * fraction:.0f}% of the videos",
                )
            )
            for fraction in missing
        }
        bar = stack.enter_context(progress(total=len(missing) * config.pretrain.steps, desc="Table 2 models"))
        while not all(child.done() for child in children.values()):
            bar.n = sum(_last_logged_step(folders[fraction] / "model") for fraction in missing)
            bar.refresh()
            time.sleep(1.0)
        models.update({fraction: child.result() for fraction, child in children.items()})  # a child's error
        bar.n = bar.total
        bar.refresh()
    return models


def data_size_table(
    config: Config, fractions: Sequence[float] = (0.25, 0.5, 1.0), device: str = "cpu"
) -> list[dict[str, float]]:
    """Table 2: zero-shot accuracy after pretraining on a fraction of the training videos.

    Every fraction trains the same number of steps as the whole set (`pretrain.steps`), so that the
    rows differ in data only, not in compute: a smaller set is seen more times over. The fractions'
    models not cached yet train side by side, one child process each.
    """
    tokens = resolve(TOKENIZE, config)
    _, val, verbs, nouns = with_labels(
        load_segments(tokens, ("training",)), load_segments(tokens, ("validation",))
    )
    results = []
    steps = config.pretrain.steps
    models = _fraction_models(config, [f for f in fractions if f != 1.0])
    models[1.0] = resolve(PRETRAIN, config)  # the whole set: the preset's own pretrained model
    for fraction in fractions:
        model, vocab, tokenizer = load_pretrained(models[fraction], device)
        row = zero_shot_row(
            model,
            tokenizer,
            vocab,
            val,
            config.eval.zero_shot_template,
            verbs,
            nouns,
            max_len=config.pretrain.max_seq_len,
            ks=config.eval.top_k,
        )
        results.append({"fraction": fraction, "steps": steps, **row})
    return results
