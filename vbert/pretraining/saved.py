"""A finished pretraining folder: the final weights (safetensors), the encoder's config, the joint
vocabulary, the WordPiece tokenizer and a `transformers` export; written once training ends, read
by every downstream task.

The export (`hf/`, `export_videobert`) is a BertForMaskedLM over the joint vocabulary whose tokenizer
holds the visual words as `[V0]` ... and `[>]` (`JointVocab.added_tokens`), so
`transformers.pipeline("fill-mask")` reads and prints them by name. A string gives every token type 0;
VideoBERT gives `[>]`, the video and the closing [SEP] type 1, so for its exact logits pass
`token_type_ids` yourself. The pooler and the alignment head stay in `videobert.safetensors`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vbert.bert.hf import export_hf
from vbert.bert.model import BertConfig
from vbert.bert.wordpiece import load_tokenizer
from vbert.core.manifest import atomic_write_json, read_json, verify_outputs
from vbert.errors import DataError
from vbert.pretraining.checkpoint import checkpoint_at, load_checkpoint
from vbert.pretraining.joint_vocab import JointVocab
from vbert.pretraining.videobert import VideoBertForPretraining

WEIGHTS = "videobert.safetensors"


def save_pretrained(model: VideoBertForPretraining, vocab: JointVocab, tokenizer: Any, out_dir: Path) -> None:
    """Write the final weights (safetensors), configs, tokenizer and a transformers export."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS))
    atomic_write_json(out_dir / "bert_config.json", dataclasses.asdict(model.config))
    atomic_write_json(out_dir / "joint_vocab.json", vocab.to_dict())
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    export_videobert(model, vocab, tokenizer, out_dir / "hf")


def export_videobert(
    model: VideoBertForPretraining, vocab: JointVocab, tokenizer: Any, directory: str | Path
) -> Path:
    """Write a `transformers` BertForMaskedLM directory whose tokenizer knows the visual words and `[>]`."""
    return export_hf(model.mlm, directory, tokenizer, extra_tokens=vocab.added_tokens(), pooler=False)


def load_pretrained(
    folder: str | Path, device: str | torch.device = "cpu", step: int | None = None
) -> tuple[VideoBertForPretraining, JointVocab, Any]:
    """A finished pretraining folder -> (model in eval mode, joint vocabulary, text tokenizer).

    With `step`, the weights are those of the folder's training checkpoint of that step (to follow a
    metric over training; `pretrain.keep_checkpoints` decides how many a run keeps).
    """
    folder = Path(folder)
    for name in (WEIGHTS, "bert_config.json", "joint_vocab.json"):
        if not (folder / name).is_file():
            raise DataError(f"{folder}: no {name} here (is this a finished `vbert pretrain` folder?)")
    if (folder / "manifest.json").is_file():
        verify_outputs(folder)  # weights changed since training are refused, naming the file
    config = _from_json(BertConfig, folder / "bert_config.json")
    vocab = _from_json(JointVocab, folder / "joint_vocab.json")
    try:
        model = VideoBertForPretraining(config, vocab)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"{folder}: bert_config.json and joint_vocab.json do not fit together ({err})"
        ) from None
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
