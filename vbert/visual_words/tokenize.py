"""Visual words, part 2: every clip becomes its visual word, grouped into video "sentences".

`vbert tokenize` assigns each clip of a features folder to a word of a fitted vocabulary
(`vbert.visual_words.vocab`) and groups the words as the paper does: the clips inside each ASR
sentence's time span (`Narration.sentences()`); a video without narration is cut into segments
of `vocab.words_per_segment` (16) words, with empty text. Each ground-truth segment also gets
its words, for zero-shot evaluation. Output: `tokens.jsonl` (format in docs/architecture.md)
and a manifest; a video in the dataset without features, or with features but no record, is
recorded as a failure and skipped, and so is what the dataset's loader could not read
(`VideoDataset.failures`: a bad annotation entry, a bad narration).

A clip belongs to a span when its centre lies inside it; a span too short to hold a clip
centre gets the one clip whose centre is nearest, provided that clip overlaps the span.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vbert.config import Config, add_config_arguments, config_from_args
from vbert.core.device import select_device
from vbert.core.manifest import (
    file_sha256,
    is_complete,
    json_hash,
    manifest_hash,
    read_manifest,
    write_manifest,
)
from vbert.core.run_folder import run_folder_of
from vbert.core.stages import Stage, resolve
from vbert.data.dataset import Failure, VideoDataset, VideoRecord
from vbert.data.howto100m import attach_narrations, load_captions
from vbert.data.synthcook import load_synthcook
from vbert.data.synthcook.generate import STAGE as GENERATE
from vbert.data.youcook2 import load_youcook2
from vbert.errors import DataError
from vbert.features.extract import STAGE as EXTRACT
from vbert.features.store import FeatureStore
from vbert.visual_words.kmeans import HierarchicalKMeans
from vbert.visual_words.kmeans_io import read_metadata
from vbert.visual_words.token_file import TOKENS_FILE, write_token_file
from vbert.visual_words.vocab import STAGE as VOCAB
from vbert.visual_words.vocab import load_vocab, vocab_file

# ---------------------------------------------------------------- clips -> words -> sentences


def clips_in_span(starts: np.ndarray, ends: np.ndarray, span_start: float, span_end: float) -> np.ndarray:
    """Indices of the clips whose centre lies in [span_start, span_end] (nearest overlapping clip if none)."""
    centres = (starts + ends) / 2.0  # [n]
    inside = np.flatnonzero((centres >= span_start) & (centres <= span_end))
    if len(inside) or len(starts) == 0:
        return inside
    nearest = int(np.argmin(np.abs(centres - (span_start + span_end) / 2.0)))
    overlaps = starts[nearest] < span_end and ends[nearest] > span_start
    return np.array([nearest] if overlaps else [], dtype=np.int64)


def video_sentences(
    record: VideoRecord | None,
    words: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    words_per_segment: int = 16,
) -> list[dict[str, Any]]:
    """The video "sentences" of one video: ASR sentences with their clips' words, or 16-word segments."""
    narration = record.narration if record is not None else None
    if narration is not None and narration.words:
        out = []
        for s in narration.sentences():
            idx = clips_in_span(starts, ends, s.start, s.end)
            out.append(
                {
                    "text": s.text,
                    "start": float(s.start),
                    "end": float(s.end),
                    "video_words": words[idx].tolist(),
                }
            )
        return out
    out = []
    for a in range(0, len(words), words_per_segment):
        b = min(a + words_per_segment, len(words))
        out.append(
            {
                "text": "",
                "start": float(starts[a]),
                "end": float(ends[b - 1]),
                "video_words": words[a:b].tolist(),
            }
        )
    return out


def video_tokens(
    record: VideoRecord, words: np.ndarray, starts: np.ndarray, ends: np.ndarray, words_per_segment: int = 16
) -> dict[str, Any]:
    """One line of tokens.jsonl: a video's words, its sentences and its ground-truth segments."""
    segments = []
    for seg in record.segments:
        idx = clips_in_span(starts, ends, seg.start, seg.end)
        segments.append(
            {
                "id": seg.id,
                "start": float(seg.start),
                "end": float(seg.end),
                "sentence": seg.sentence,
                "references": seg.references,
                "verb": seg.verb,
                "noun": seg.noun,
                "occluded": seg.occluded,
                "video_words": words[idx].tolist(),
            }
        )
    return {
        "video_id": record.video_id,
        "subset": record.subset,
        "recipe_type": record.recipe_type,
        "words": words.tolist(),
        "clip_starts": [round(float(s), 4) for s in starts],
        "clip_ends": [round(float(e), 4) for e in ends],
        "sentences": video_sentences(record, words, starts, ends, words_per_segment),
        "segments": segments,
    }


def assign_words(
    tree: HierarchicalKMeans, vectors: torch.Tensor, assignment: str = "tree", chunk: int = 1 << 18
) -> torch.Tensor:
    """Word ids of `vectors` [N, D]: by tree descent ("tree") or nearest leaf ("nearest"): [N].

    Rows go through in chunks of `chunk` so that float16 features of millions of clips are
    never all converted to float32 at once.
    """
    if assignment not in ("tree", "nearest"):
        raise DataError(f"vocab.assignment must be 'tree' or 'nearest', got {assignment!r}")
    method = tree.assign if assignment == "tree" else tree.assign_nearest_leaf
    parts = [method(vectors[a : a + chunk]) for a in range(0, len(vectors), chunk)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def tokenize_features(
    features_dir: str | Path,
    dataset: VideoDataset,
    vocab_path: str | Path,
    out_dir: str | Path,
    config: Config,
    device: str | torch.device | None = None,
    dataset_hash: str = "",
) -> Path:
    """Write `out_dir/tokens.jsonl` (one line per video with features and a record) and a manifest."""
    features_dir, out_dir = Path(features_dir), Path(out_dir)
    tree = load_vocab(vocab_path, features_dir, device=device)
    store = FeatureStore(features_dir)
    words = assign_words(tree, torch.from_numpy(store.features), config.vocab.assignment).numpy()  # [N]
    present = set(store.videos())
    failures = [f.to_dict() for f in dataset.failures]  # what the loader could not read
    unreadable = {f.item for f in dataset.failures}
    failures += [
        Failure(v, "no features (extraction failed or skipped)").to_dict()
        for v in sorted(dataset.videos)
        if v not in present
    ]
    rows: dict[str, list[int]] = {}
    for i, video_id in enumerate(store.video_ids):
        rows.setdefault(video_id, []).append(i)
    lines, clips, sentences = [], 0, 0
    for video_id, idx in rows.items():
        record = dataset.videos.get(video_id)
        if record is None:
            if video_id not in unreadable:  # else its loader failure already says why
                failures.append(Failure(video_id, "features but no annotation record").to_dict())
            continue
        idx = np.asarray(idx)[np.argsort(store.starts[idx], kind="stable")]  # the video's clips in time order
        line = video_tokens(
            record, words[idx], store.starts[idx], store.ends[idx], config.vocab.words_per_segment
        )
        lines.append(line)
        clips += len(idx)
        sentences += len(line["sentences"])
    if not lines:
        raise DataError(f"{features_dir}: no video has both features and an annotation record")
    write_token_file(out_dir, lines)
    used = np.unique(words)
    write_manifest(
        out_dir,
        "tokenize",
        tokenize_spec(config, tree),
        inputs=tokenize_inputs(features_dir, vocab_path, dataset_hash),
        outputs={
            TOKENS_FILE: file_sha256(out_dir / TOKENS_FILE),
            "videos": len(lines),
            "clips": clips,
            "sentences": sentences,
            "distinct_words": len(used),
            "vocab_size": tree.vocab_size,
        },
        failures=failures,
    )
    return out_dir


def tokenize_spec(config: Config, tree: HierarchicalKMeans | None = None) -> dict[str, Any]:
    """What decides a token file besides its inputs: the vocab section (k and depth of the file used)."""
    vocab = config.to_dict()["vocab"]
    if tree is not None:  # the vocabulary file, not the preset, says how many words there are
        vocab.update(k=tree.k, depth=tree.depth)
    return {"vocab": vocab, "seed": config.seed}


def tokenize_inputs(
    features_dir: str | Path, vocab_path: str | Path, dataset_hash: str = ""
) -> dict[str, str]:
    """The inputs a token file is made from: the features, the vocabulary file (and what it was
    fitted on) and the dataset."""
    file = vocab_file(vocab_path)
    return {
        "features": manifest_hash(features_dir),
        "vocab_fitted_on": read_metadata(file).get("features_hash", ""),
        "vocab_file": file_sha256(file),
        "dataset": dataset_hash,
    }


def tokens_complete(
    out_dir: str | Path,
    features_dir: str | Path,
    vocab_path: str | Path,
    config: Config,
    dataset_hash: str = "",
) -> bool:
    """True when `out_dir` already holds tokens made from exactly these inputs and settings."""
    if not (Path(out_dir) / TOKENS_FILE).is_file():
        return False
    meta = read_metadata(vocab_file(vocab_path))
    spec = tokenize_spec(config)
    spec["vocab"].update(k=int(meta["k"]), depth=int(meta["depth"]))
    return is_complete(out_dir, spec, tokenize_inputs(features_dir, vocab_path, dataset_hash))


# ---------------------------------------------------------------- the stage


def run_stage(config: Config, inputs: dict[str, Path], out: Path, force: bool) -> dict[str, Any]:
    """The "tokenize" stage: the clips of the "extract" stage's features -> their words, into `out`."""
    root, features, vocab = inputs["generate"], inputs["extract"], inputs["vocab"]
    data_hash = manifest_hash(root)
    if force or not tokens_complete(out, features, vocab, config, data_hash):
        tokenize_features(features, load_synthcook(root), vocab, out, config, dataset_hash=data_hash)
    manifest = read_manifest(out)
    return {
        **{k: v for k, v in manifest["outputs"].items() if k != TOKENS_FILE},
        "failures": len(manifest["failures"]),
    }


STAGE = Stage(
    "tokenize",
    "clips -> visual words, grouped by narration sentence (vbert.visual_words)",
    run_stage,
    needs=(GENERATE, EXTRACT, VOCAB),
    key=tokenize_spec,
    code=("vbert.visual_words.tokenize", "vbert.visual_words.token_file", "vbert.data"),
)


# ---------------------------------------------------------------- `vbert tokenize`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vbert tokenize`."""
    add_config_arguments(parser)
    parser.add_argument(
        "--features",
        default=None,
        help="features folder (default: the preset's; with --data, the one beside it in a run folder)",
    )
    parser.add_argument(
        "--vocab",
        default=None,
        help="vocabulary file or folder (default: the preset's; with --data, the one beside it)",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="SynthCook folder or YouCook2 annotation JSON (default: the preset's SynthCook)",
    )
    parser.add_argument(
        "--captions",
        default=None,
        help="HowTo100M-style captions (narration): a JSON file or a folder of <video_id>.csv; "
        "only with --data JSON (a SynthCook folder brings its own narrations.json)",
    )
    parser.add_argument("--out", default="runs/tokens", help="output folder (default: runs/tokens)")
    parser.add_argument(
        "--assignment", choices=["tree", "nearest"], default=None, help="default: vocab.assignment"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    parser.add_argument(
        "--force", action="store_true", help="tokenize again even when the output is up to date"
    )


def main(args: argparse.Namespace) -> int:
    """`vbert tokenize`: every clip -> its visual word, grouped into sentences."""
    config = config_from_args(args)
    if args.assignment:
        config.vocab.assignment = args.assignment
    _defaults_beside_data(args)
    dataset, data_hash = _load_dataset(args, config)
    if args.features is None:
        args.features = resolve(EXTRACT, config)
    vocab = args.vocab if args.vocab is not None else resolve(VOCAB, config)
    out, note = Path(args.out), " (up to date, not redone; --force to redo)"
    if args.force or not tokens_complete(out, args.features, vocab, config, data_hash):
        note = ""
        tokenize_features(
            args.features,
            dataset,
            vocab,
            out,
            config,
            device=select_device(args.device),
            dataset_hash=data_hash,
        )
    o = read_manifest(out)
    print(
        f"{out / TOKENS_FILE}{note}: {o['outputs']['videos']} videos, {o['outputs']['clips']} clips, "
        f"{o['outputs']['sentences']} sentences, {o['outputs']['distinct_words']} distinct words; "
        f"{len(o['failures'])} failures"
    )
    return 0


def _defaults_beside_data(args: argparse.Namespace) -> None:
    """With --data, the features and vocabulary cannot be the preset's (other videos): take them from the
    `vbert run` folder the data sits in, or ask for them."""
    if args.data is None:
        return
    data = Path(args.data)
    run = run_folder_of(data, "synthcook") if data.is_dir() else None
    for option, folder in (("features", "features"), ("vocab", "vocab")):
        if getattr(args, option) is not None:
            continue
        if run is not None and (run / folder).is_dir():
            setattr(args, option, run / folder)
            continue
        raise DataError(
            f"{data}: with --data, give --{option} too (the preset's own {folder} belong to other "
            f"videos): `vbert extract` and then `vbert vocab` make them for these videos"
        )


def captions_hash(path: str | Path) -> str:
    """Identity of a captions input: the JSON file's SHA-256, or of each <video_id>.csv of a folder."""
    path = Path(path)
    if path.is_dir():
        return json_hash({p.name: file_sha256(p) for p in sorted(path.glob("*.csv")) if p.is_file()})
    return file_sha256(path)


def _load_dataset(args: argparse.Namespace, config: Config) -> tuple[VideoDataset, str]:
    """The dataset `vbert tokenize` reads (--data, --captions) and the hash of the files it came from."""
    data = Path(args.data) if args.data is not None else None
    if args.captions is not None and (data is None or data.is_dir()):
        where = "the preset's SynthCook" if data is None else f"the SynthCook folder {data}"
        raise DataError(
            f"{args.captions}: --captions is only used with --data <YouCook2 annotation JSON>; "
            f"{where} brings its own narrations.json"
        )
    if data is None:
        root = resolve(GENERATE, config)
        return load_synthcook(root), manifest_hash(root)
    if data.is_dir():
        if (data / "manifest.json").is_file():
            return load_synthcook(data), manifest_hash(data)
        files = {
            name: file_sha256(data / name)
            for name in ("annotations.json", "narrations.json")
            if (data / name).is_file()
        }
        return load_synthcook(data), json_hash(files)
    dataset = load_youcook2(data)
    if args.captions is None:
        return dataset, file_sha256(data)
    attach_narrations(dataset, load_captions(args.captions, failures=dataset.failures))
    return dataset, json_hash({"annotations": file_sha256(data), "captions": captions_hash(args.captions)})
