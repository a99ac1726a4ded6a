"""Typed configuration: presets shipped as YAML inside the package, loaded into dataclasses.

A preset (``tiny``, ``small``, ``base``, ``paper``) or a user's YAML file sets what differs from
the defaults below (a preset also restates the defaults it is about, e.g. base's 12^4 words).
Unknown keys and values of the wrong type are refused with one line that names the file, the key
and what was expected; values no stage can use, by `vbert.config_rules`. Each choice the paper
leaves open is a named field with its default explained next to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from vbert.config_rules import validate
from vbert.errors import ConfigError

PRESETS = ("tiny", "small", "base", "paper")


@dataclass
class DataConfig:
    """SynthCook generation: how many videos, how big, how long."""

    num_train_videos: int = 400
    num_val_videos: int = 100
    action_clips_per_class: int = 40  # labelled single-action clips (the role Kinetics plays)
    width: int = 128
    height: int = 128
    fps: float = 20.0  # frame rate the videos are rendered at (decoding resamples anyway)
    min_step_seconds: float = 2.0
    max_step_seconds: float = 6.0
    max_steps: int = 8  # recipes have 4 to 8 steps; a smaller cap keeps tiny videos short
    action_clip_seconds: float = 2.0  # longer than one 1.5 s clip, so a clip fits with slack
    # Share of recipe steps filmed with the action hidden (a cloth hangs in front of the work area):
    # their own clips barely show the verb or the ingredient, and only the rest of the video (the
    # recipe, the neighbouring steps) tells them. 0: every step is plain to see. 0.25 on tiny brought
    # the supervised probe on clip features from 1.00 to 0.90 / 0.88 and, with the tiny recipe as it
    # is, the zero-shot verb row down to 15% (docs/benchmarks.md): off until a recipe reads it back.
    occlusion_prob: float = 0.0
    # Reference captions per annotated step, by different "annotators". BLEU takes the best match
    # over the references, so each one more lifts every row of Table 3: with 3 the tiny preset's best
    # row read 64.5 BLEU-4, with 2 it reads 48.5 (docs/benchmarks.md).
    captions_per_segment: int = 2


@dataclass
class VideoConfig:
    """Decoding: the paper samples 20 fps and cuts non-overlapping 30-frame (1.5 s) clips."""

    fps: float = 20.0
    clip_frames: int = 30
    crop_size: int = 112  # frames are resized (short side) then centre-cropped to this


@dataclass
class FeaturesConfig:
    """Clip -> vector. The paper: S3D pre-classifier activations, average-pooled, 1024-d."""

    extractor: str = "course"  # "course" (trained on SynthCook), "s3d" or "resnet"
    weights: str = "default"  # "default", "kinetics400", "none" or a local file
    batch_size: int = 16
    num_workers: int = 0


@dataclass
class VocabConfig:
    """Hierarchical k-means: k clusters per node, `depth` levels -> k**depth visual words."""

    k: int = 12
    depth: int = 4
    sample_size: int = 1_000_000  # features sampled to fit the tree
    n_init: int = 1  # k-means restarts per node
    max_iter: int = 50
    tol: float = (
        1e-4  # Lloyd stops when centroids move less than tol x the node's feature variance (sklearn's rule)
    )
    # "tree": descend the tree, as the paper's hierarchical k-means does; "nearest": nearest of all
    # leaves (slightly lower distortion, k**(depth-1) / depth times more distance computations)
    assignment: Literal["tree", "nearest"] = "tree"
    words_per_segment: int = 16  # the paper: video without narration is cut into 16-token "sentences"


@dataclass
class TextConfig:
    """WordPiece: trained on the narrations, or an existing BERT vocabulary directory."""

    vocab_size: int = 30522
    tokenizer: str = "train"  # "train", or a directory holding a BERT vocab.txt
    lowercase: bool = True


@dataclass
class EncoderSizes:
    """Sizes and regularisation of a BERT encoder (BERT-base by default; the paper uses BERT-large).

    `ModelConfig` (the config's `model` section) and `vbert.bert.model.BertConfig` (what a built
    encoder records) both take these fields from here.
    """

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    # Under bf16 autocast, keep the residual stream in bf16 rather than fp32 (faster on a GPU; see
    # docs/benchmarks.md). Not in the paper.
    low_precision_residual: bool = False


@dataclass
class ModelConfig(EncoderSizes):
    """The `model` section: the encoder's sizes, and where its weights start."""

    init_from: str = ""  # "" = from scratch, or a BERT directory saved by save_pretrained


@dataclass
class PretrainConfig:
    """Joint pretraining; fields the paper leaves open carry our documented default."""

    steps: int = 100_000
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    schedule: Literal["linear", "cosine"] = "linear"
    grad_accum: int = 1
    clip_grad: float = 1.0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool = False
    # torch.compile mode: "reduce-overhead" adds CUDA graphs (shapes are fixed, so one graph suffices)
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    mask_prob: float = 0.15  # not in the paper: BERT's rate
    mask_frac: float = 0.8  # of the chosen tokens, share replaced by [MASK] (BERT's 80/10/10)
    random_frac: float = 0.1  # share replaced by a random token of the same modality; the rest unchanged
    max_seq_len: int = 128  # not in the paper: BERT's pretraining length, a whole batch is [B, 128]
    max_text_len: int = 48  # text budget of a video-text sequence; the video words fill the rest
    # Share of each batch per regime (text-only, video-only, video-text); fixed counts per batch so
    # shapes never change. Not in the paper: half joint, so alignment sees as many pairs as MLM.
    regime_mix: tuple[float, ...] = (0.25, 0.25, 0.5)
    # Loss weights (not in the paper): every objective counts the same.
    text_mlm_weight: float = 1.0
    video_mlm_weight: float = 1.0
    joint_mlm_weight: float = 1.0
    align_weight: float = 1.0
    # Alignment (not in the paper): a share `alignment_share` of the video-text pairs trains the
    # alignment classifier; of those, `negative_prob` are misaligned, like BERT's next-sentence task,
    # half with video from another time of the same video (hard: same kitchen, same recipe) and half
    # from another video (easy). The other pairs are aligned and train masked prediction only. The
    # default is the next-sentence style: every pair is an alignment pair and is masked too, so the
    # words of misaligned pairs are predicted as well. `mask_alignment_pairs: false` leaves alignment
    # pairs unmasked, as UNITER does (never mask the misaligned pairs alone: the classifier would read
    # "has [MASK]" as "aligned"). On SynthCook, video-text pairs without alignment (alignment_share 0,
    # regime_mix [0, 0, 1]) are what teach the model to read the video (docs/benchmarks.md).
    alignment_share: float = 1.0
    # Training step from which the alignment pairs above are drawn: before it, every video-text pair
    # trains masked prediction only. A later start makes a second phase that teaches alignment to a
    # model that already reads the video (the tiny preset; docs/benchmarks.md). 0: from the start.
    alignment_from_step: int = 0
    negative_prob: float = 0.5
    negative_same_video: float = 0.5
    mask_alignment_pairs: bool = True
    max_concat_sentences: int = 3  # paper: neighbouring sentences concatenated at random; 1..this many
    max_subsample: int = 5  # paper: video subsampling rate drawn from 1 to 5
    video_only_len: int = 64  # video-only sequence: a random window of this many words (before subsampling)
    visual_init: Literal["random", "centroids"] = "random"  # new visual rows: random, or projected centroids
    freeze_input_embeddings: bool = False  # the paper (reported) keeps the word embeddings frozen
    num_workers: int = 0  # data loader processes; batches are built on the CPU while the GPU trains
    tensorboard: bool = True
    keep_checkpoints: int = 2  # how many recent checkpoints a run folder keeps
    log_every: int = 50
    checkpoint_every: int = 1000


@dataclass
class EvalConfig:
    """Downstream evaluation settings."""

    zero_shot_template: str = "now let me show you how to [MASK] the [MASK]"
    top_k: tuple[int, ...] = (1, 5)
    # Captioning (Table 3): the encoder-decoder's own training; not in the paper, our choices.
    caption_epochs: int = 40
    caption_lr: float = 1e-3
    caption_batch_size: int = 32
    caption_max_len: int = 20  # words per generated caption (YouCook2 captions average ~9 words)
    caption_beam_size: int = 4
    caption_min_count: int = 2  # caption words seen fewer times become [UNK]
    # The VideoBERT rows read each segment between its neighbouring clips' words (our addition: the
    # paper gives the template and the segment's words only); false gives the paper's input.
    caption_context: bool = True
    # Retrieval ranks every video for every sentence (cost ~ videos^2): above this many validation
    # videos it ranks a seeded sample of this many (0: all of them).
    retrieval_max_videos: int = 100


@dataclass
class Config:
    """Everything one run needs, section by section, in pipeline order."""

    name: str = "custom"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples become lists), ready for JSON or YAML."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def section_hash(self, *sections: str) -> str:
        """Short stable hash of the named sections (all when none), used as a cache key."""
        data = self.to_dict()
        chosen = {s: data[s] for s in sections} if sections else data
        text = json.dumps(chosen, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------- typed loading


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; return it converted (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            inner = (typing.get_args(tp) or (Any,))[0]
            items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
    elif tp is Any:
        return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _NUMBER.match(value.strip()):  # YAML reads 1e-3 (no dot) as text
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if (
            isinstance(value, (str, float))
            and not isinstance(value, bool)
            and _NUMBER.match(str(value).strip())
        ):
            number = float(value)  # 1e5 or 100000.0 for a count
            if number.is_integer():
                return int(number)
    elif tp is type(None):
        if value is None:
            return None
    elif isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = ", ".join(names)
            raise ConfigError(f"{_join(where, key)}: unknown setting{hint}; known here: {known}")
        kwargs[key] = _coerce(value, hints[key], _join(where, key))
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}:{line} is not valid YAML ({getattr(err, 'problem', err)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    return data


def preset_text(name: str) -> str:
    """The YAML text of a shipped preset."""
    return resources.files("vbert.configs").joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def parse_override(text: str) -> dict[str, Any]:
    """Turn 'model.num_layers=4' into {'model': {'num_layers': 4}} (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected section.key=value")
    dotted, raw = text.split("=", 1)
    value = _read_yaml(f"v: {raw}", f"override '{text}'")["v"]
    out: dict[str, Any] = {}
    node = out
    *parents, leaf = dotted.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


def load_config(preset: str | Path = "tiny", overrides: list[str] | None = None) -> Config:
    """Load a shipped preset by name, or a YAML file by path, then apply `key=value` overrides."""
    preset_str = str(preset)
    if preset_str in PRESETS:
        source = f"preset '{preset_str}' (vbert/configs/{preset_str}.yaml)"
        data = _read_yaml(preset_text(preset_str), source)
    else:
        path = Path(preset_str)
        if path.suffix not in (".yaml", ".yml") and not path.exists():
            raise ConfigError(
                f"preset '{preset_str}' does not exist: choose one of {', '.join(PRESETS)} "
                "or give the path of a YAML file"
            )
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        source = str(path)
        data = _read_yaml(path.read_text(encoding="utf-8"), source)
        base = data.pop("preset", None)
        if base is not None:  # a user file may start from a shipped preset
            if base not in PRESETS:
                raise ConfigError(f"{source}: preset: expected one of {', '.join(PRESETS)}, got {base!r}")
            data = _merge(_read_yaml(preset_text(base), f"preset '{base}'"), data)
    settings = {}  # dotted setting -> the override that set it, so that an error blames the right place
    for text in overrides or []:
        data = _merge(data, parse_override(text))
        settings[text.split("=", 1)[0].strip()] = text
    try:
        config = _build(Config, data, "")
        validate(config)  # values no stage can work with (vbert.config_rules)
        return config
    except ConfigError as err:
        message = str(err)
        for dotted, text in settings.items():
            if any(message.startswith(dotted + end) for end in (":", ".", "[")):
                raise ConfigError(f"override '{text}': {message}") from None
        raise ConfigError(f"{source}: {message}") from None


def save_config(config: Config, path: str | Path) -> None:
    """Write the full resolved config as YAML (it reloads to an equal Config)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The --preset and --set options every stage shares."""
    parser.add_argument(
        "--preset", default="tiny", help="tiny, small, base, paper, or a YAML file (default: tiny)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set model.num_layers=4 (repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """Resolve the config named by --preset and --set."""
    return load_config(args.preset, args.overrides)
