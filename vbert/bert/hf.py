"""Weight exchange with Hugging Face `transformers`: import any BERT checkpoint, export to BertForMaskedLM.

A checkpoint directory written by `save_pretrained` holds `config.json` and the weights
(`model.safetensors`, `pytorch_model.bin`, or a sharded index of either). BertModel checkpoints
(no MLM head: the head is initialised) and BertForMaskedLM / BertForPreTraining ones (prefix
`bert.`, head under `cls.predictions`) both load. The only structural difference from
transformers is our fused QKV projection: split into query/key/value on export, concatenated
on import.

On export, `extra_tokens` names the ids a model has beyond its tokenizer's vocabulary (VideoBERT's
visual words and `[>]`, appended after the WordPiece ids): the exported tokenizer gets them, in
order, so that it and the model have the same vocabulary size and the tokens are read from text
and printed by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken

from vbert.bert.model import BertConfig, BertForMaskedLM
from vbert.core.manifest import atomic_write_json
from vbert.core.weights import load_state_dict
from vbert.errors import DataError

# transformers name (without the "bert." prefix) -> vbert name; per-layer names use {i}.
_EMBEDDINGS = {
    "embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "bert.embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight": "bert.embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight": "bert.embeddings.norm.weight",
    "embeddings.LayerNorm.bias": "bert.embeddings.norm.bias",
}
_LAYER = {
    "attention.output.dense": "attention.out",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "ffn_in",
    "output.dense": "ffn_out",
    "output.LayerNorm": "ffn_norm",
}
_POOLER = {"pooler.dense.weight": "bert.pooler.weight", "pooler.dense.bias": "bert.pooler.bias"}
_HEAD = {
    "cls.predictions.transform.dense.weight": "mlm.dense.weight",
    "cls.predictions.transform.dense.bias": "mlm.dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "mlm.norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "mlm.norm.bias",
    "cls.predictions.bias": "mlm.bias",
}
_QKV = ("query", "key", "value")
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _name_map(num_layers: int) -> dict[str, str]:
    """Every transformers name (no prefix) except query/key/value -> the vbert name."""
    names = dict(_EMBEDDINGS) | dict(_POOLER) | dict(_HEAD)
    for i in range(num_layers):
        for theirs, ours in _LAYER.items():
            for part in ("weight", "bias"):
                names[f"encoder.layer.{i}.{theirs}.{part}"] = f"bert.layers.{i}.{ours}.{part}"
    return names


# ---------------------------------------------------------------- import


def read_hf_config(directory: str | Path) -> BertConfig:
    """Read a transformers BERT `config.json` into a vbert BertConfig (refusing what we cannot run)."""
    path = Path(directory) / "config.json"
    if not Path(directory).is_dir():
        raise DataError(f"{directory}: not a directory (expected a BERT checkpoint saved by save_pretrained)")
    if not path.is_file():
        raise DataError(f"{path}: missing; a BERT checkpoint directory needs config.json")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object")
    if raw.get("model_type", "bert") != "bert":
        raise DataError(f"{path}: model_type is {raw['model_type']!r}, expected 'bert'")
    if raw.get("hidden_act", "gelu") != "gelu":
        raise DataError(
            f"{path}: hidden_act {raw['hidden_act']!r} is not supported (vbert uses the exact 'gelu')"
        )
    if raw.get("position_embedding_type", "absolute") != "absolute":
        kind = raw["position_embedding_type"]
        raise DataError(f"{path}: position_embedding_type {kind!r} is not supported (only 'absolute')")
    if raw.get("tie_word_embeddings", True) is False:
        raise DataError(
            f"{path}: tie_word_embeddings is false, but vbert's MLM decoder is tied to the word embeddings"
        )
    fields = {
        "vocab_size": "vocab_size",
        "hidden_size": "hidden_size",
        "num_layers": "num_hidden_layers",
        "num_heads": "num_attention_heads",
        "intermediate_size": "intermediate_size",
        "max_position_embeddings": "max_position_embeddings",
    }
    missing = [theirs for theirs in fields.values() if theirs not in raw]
    if missing:
        raise DataError(f"{path}: missing field(s) {', '.join(missing)}")
    for theirs in fields.values():
        value = raw[theirs]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise DataError(f"{path}: {theirs} must be a positive integer, got {value!r}")
    values: dict[str, Any] = {ours: raw[theirs] for ours, theirs in fields.items()}
    values["type_vocab_size"] = raw.get("type_vocab_size", 2)
    values["hidden_dropout"] = raw.get("hidden_dropout_prob", 0.1)
    values["attention_dropout"] = raw.get("attention_probs_dropout_prob", 0.1)
    values["layer_norm_eps"] = raw.get("layer_norm_eps", 1e-12)
    values["pad_token_id"] = raw.get("pad_token_id") or 0
    values["initializer_range"] = raw.get("initializer_range", 0.02)
    try:
        return BertConfig(**values)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: {err}") from None


def read_hf_weights(directory: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """Load a checkpoint's tensors (single file or sharded index) -> (state dict, file it came from)."""
    directory = Path(directory)
    for name in _WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return load_state_dict(path), path
        try:
            shards = sorted(set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as err:
            raise DataError(f"{path}: not a valid shard index ({err})") from None
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            shard_path = (directory / shard).resolve()
            if shard_path.parent != directory.resolve() or not shard_path.is_file():
                raise DataError(f"{path}: shard {shard!r} is missing or outside the directory")
            state.update(load_state_dict(shard_path))
        return state, path
    raise DataError(f"{directory}: no weights found (expected one of {', '.join(_WEIGHT_FILES)})")


def _normalise_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the `bert.` prefix and rename old TensorFlow-era LayerNorm gamma/beta."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("bert.")
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[key] = value
    if "cls.predictions.bias" not in out and "cls.predictions.decoder.bias" in out:
        out["cls.predictions.bias"] = out["cls.predictions.decoder.bias"]
    return out


def hf_to_vbert_state(
    state: dict[str, torch.Tensor], config: BertConfig, source: str | Path
) -> dict[str, torch.Tensor]:
    """transformers-named tensors -> vbert-named ones (QKV fused); errors name `source`."""
    state = _normalise_names(state)
    ours: dict[str, torch.Tensor] = {}
    for theirs, name in _name_map(config.num_layers).items():
        if theirs in state:
            ours[name] = state[theirs]
    for i in range(config.num_layers):
        for part in ("weight", "bias"):
            keys = [f"encoder.layer.{i}.attention.self.{w}.{part}" for w in _QKV]
            absent = [k for k in keys if k not in state]
            if absent:
                raise DataError(
                    f"{source}: missing {', '.join(absent)} (config.json says {config.num_layers} layers)"
                )
            ours[f"bert.layers.{i}.attention.qkv.{part}"] = torch.cat([state[k] for k in keys], dim=0)
    extra_layers = sorted(
        {k.split(".")[2] for k in state if k.startswith("encoder.layer.")}
        - {str(i) for i in range(config.num_layers)}
    )
    if extra_layers:
        raise DataError(
            f"{source}: has encoder layers {', '.join(extra_layers)} beyond the "
            f"{config.num_layers} that config.json declares"
        )
    return ours


def load_hf_bert(directory: str | Path, **config_overrides: Any) -> BertForMaskedLM:
    """Load a BERT checkpoint directory (BertModel or BertForMaskedLM, any size) into vbert.

    For a published model, download it once with the network, e.g.
    `transformers.BertForMaskedLM.from_pretrained("bert-large-uncased").save_pretrained(directory)`.

    Missing pooler or MLM-head tensors keep their fresh BERT initialisation; everything of the
    encoder must be present and fit config.json, or a DataError names the file and the tensor.
    `config_overrides` change BertConfig fields that do not affect shapes (e.g. dropout).
    """
    config = read_hf_config(directory)
    for key, value in config_overrides.items():
        if not hasattr(config, key):
            raise TypeError(f"unknown BertConfig field {key!r}")
        setattr(config, key, value)
    state, source = read_hf_weights(directory)
    mapped = hf_to_vbert_state(state, config, source)
    model = BertForMaskedLM(config)
    expected = model.state_dict()
    optional = ("bert.pooler.", "mlm.")
    missing = [k for k in expected if k not in mapped and not k.startswith(optional)]
    if missing:
        raise DataError(
            f"{source}: missing tensors for {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    for key, value in mapped.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise DataError(
                f"{source}: tensor for {key} has shape {tuple(value.shape)}, but "
                f"{Path(directory) / 'config.json'} implies {tuple(expected[key].shape)}"
            )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in mapped.items()}, strict=False)
    return model


# ---------------------------------------------------------------- export


def vbert_to_hf_state(model: BertForMaskedLM, pooler: bool = True) -> dict[str, torch.Tensor]:
    """vbert tensors -> transformers BertForMaskedLM names (QKV split; pooler under bert.pooler, or left out)."""
    ours = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    hidden = model.config.hidden_size
    out: dict[str, torch.Tensor] = {}
    for theirs, name in _name_map(model.config.num_layers).items():
        if theirs in _POOLER and not pooler:
            continue
        key = theirs if theirs.startswith("cls.") else f"bert.{theirs}"
        out[key] = ours[name].clone()
    for i in range(model.config.num_layers):
        for part in ("weight", "bias"):
            fused = ours[f"bert.layers.{i}.attention.qkv.{part}"]  # [3H, H] or [3H]
            for which, block in zip(_QKV, fused.split(hidden), strict=True):
                out[f"bert.encoder.layer.{i}.attention.self.{which}.{part}"] = block.clone()
    return out


def hf_config_dict(config: BertConfig) -> dict[str, Any]:
    """The transformers config.json content for a vbert BertConfig (architecture BertForMaskedLM)."""
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": config.hidden_dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": config.pad_token_id,
        "initializer_range": config.initializer_range,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


def export_hf(
    model: BertForMaskedLM,
    directory: str | Path,
    tokenizer: Any = None,
    extra_tokens: Sequence[str] = (),
    pooler: bool = True,
) -> Path:
    """Write `model` (and optionally a tokenizer) as a directory transformers.BertForMaskedLM loads.

    `extra_tokens` names the model's ids after the tokenizer's vocabulary, in order; they are added to
    the exported tokenizer (matched in text as written, case kept), which must then have exactly the
    model's vocabulary size. `pooler=False` leaves `bert.pooler.*` out: BertForMaskedLM has no pooler,
    so transformers reports those tensors as unexpected when it loads them.
    """
    directory = Path(directory)
    if tokenizer is not None and len(tokenizer) + len(extra_tokens) != model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens and {len(extra_tokens)} extra tokens were named, but "
            f"the model's vocabulary has {model.config.vocab_size}: name the other ids in extra_tokens"
        )
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / "config.json", hf_config_dict(model.config))
    save_file(
        vbert_to_hf_state(model, pooler), str(directory / "model.safetensors"), metadata={"format": "pt"}
    )
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))
    if tokenizer is not None and extra_tokens:
        _add_tokens(type(tokenizer).from_pretrained(str(directory)), list(extra_tokens), directory)
    return directory


def _add_tokens(tokenizer: Any, names: list[str], directory: Path) -> None:
    """Append `names` to a saved tokenizer as tokens of their own (ids in order), and save it again."""
    first = len(tokenizer)
    tokenizer.add_tokens([AddedToken(name, normalized=False) for name in names])
    ids = tokenizer.convert_tokens_to_ids(names)
    if ids != list(range(first, first + len(names))):
        clash = [name for name, i in zip(names, ids) if i < first] or names
        raise ValueError(
            f"extra tokens must be new and distinct; {clash[0]!r} is already in the tokenizer's vocabulary "
            "or named twice"
        )
    tokenizer.save_pretrained(str(directory))
