"""A trained captioner on disk: the Table 3 encoder-decoder that `vbert describe` captions with.

The "evaluate" stage trains one captioner per row of Table 3 and keeps one of them, the
"VideoBERT + clip features" row (`KEPT_INPUT`: the paper's best input, and the one that uses both
the model and the clip features), in `eval/captioner/`:

- `captioner.safetensors`: the CaptionModel's weights;
- `captioner.json`: format version, the input kind, the input width, the encoder-decoder's sizes
  (BertConfig fields, decoder layers), caption length, and the template of the VideoBERT features;
- `caption_vocab.json`: the caption vocabulary, one word per id ([PAD], [BOS], [EOS], [UNK] first).

The stage records the three files' SHA-256 in `eval/manifest.json`; `load_captioner` reads them
back (a missing or malformed file is a DataError naming it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from vbert.bert.model import BertConfig
from vbert.core.manifest import atomic_write_json, file_sha256, read_json
from vbert.core.weights import load_state_dict
from vbert.errors import DataError
from vbert.tasks.captioning import SPECIALS, CaptionModel, CaptionVocab

CAPTIONER_DIR = "captioner"  # in the evaluate stage's folder (run_dir/eval/captioner)
WEIGHTS = "captioner.safetensors"
CONFIG = "captioner.json"
VOCAB = "caption_vocab.json"
FILES = (WEIGHTS, CONFIG, VOCAB)
KEPT_INPUT = "VideoBERT + clip features"  # the Table 3 row whose captioner is kept
FORMAT_VERSION = 1


@dataclass
class SavedCaptioner:
    """A trained captioner with what it needs to caption: its vocabulary, input kind and settings."""

    model: CaptionModel
    vocab: CaptionVocab
    input: str  # a Table 3 input kind (vbert.tasks.caption_table.INPUTS)
    max_len: int  # words per generated caption
    template: str  # the fill-in template of its VideoBERT features


def save_captioner(
    model: CaptionModel, vocab: CaptionVocab, folder: str | Path, kind: str, max_len: int, template: str
) -> dict[str, str]:
    """Write a captioner into `folder`; returns {path relative to folder's parent: SHA-256} of its files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
    atomic_write_json(
        folder / CONFIG,
        {
            "format_version": FORMAT_VERSION,
            "input": kind,
            "input_dim": int(model.input_proj[0].in_features),
            "bert_config": dataclasses.asdict(model.config),
            "decoder_layers": len(model.decoder),
            "max_len": max_len,
            "template": template,
        },
    )
    atomic_write_json(folder / VOCAB, vocab.words)
    return {f"{folder.name}/{name}": file_sha256(folder / name) for name in FILES}


def load_captioner(folder: str | Path, device: str | torch.device = "cpu") -> SavedCaptioner:
    """Read a captioner written by `save_captioner` (on `device`, in eval mode)."""
    folder = Path(folder)
    for name in FILES:
        if not (folder / name).is_file():
            raise DataError(f"{folder / name}: missing (the captioner's files are {', '.join(FILES)})")
    spec: Any = read_json(folder / CONFIG)
    words: Any = read_json(folder / VOCAB)
    if not isinstance(spec, dict) or spec.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{folder / CONFIG}: not a vbert captioner description of format {FORMAT_VERSION}")
    if not isinstance(words, list) or tuple(words[: len(SPECIALS)]) != SPECIALS:
        raise DataError(
            f"{folder / VOCAB}: not a caption vocabulary (a list of words, {', '.join(SPECIALS)} first)"
        )
    try:
        config = BertConfig(**spec["bert_config"])
        model = CaptionModel(int(spec["input_dim"]), len(words), config, int(spec["decoder_layers"]))
        model.load_state_dict(load_state_dict(folder / WEIGHTS))
        saved = SavedCaptioner(
            model.to(device).eval(),
            CaptionVocab(words),
            str(spec["input"]),
            int(spec["max_len"]),
            spec["template"],
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(
            f"{folder / CONFIG}: does not describe the weights in {folder / WEIGHTS} ({err})"
        ) from None
    return saved
