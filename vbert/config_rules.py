"""What each setting must be: checked when a config is loaded, before any stage starts.

A value no stage can work with (0 attention heads, a masking rate of 1.5, k = 1) fails here with one
line naming the setting and what it must be, instead of as a traceback deep inside a stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vbert.errors import ConfigError

if TYPE_CHECKING:
    from vbert.config import Config


def _positive(value: Any) -> bool:
    return value > 0


def _at_least(low: float) -> Callable[[Any], bool]:
    return lambda value: value >= low


def _share(value: Any) -> bool:
    return 0.0 <= value <= 1.0


# (setting, test, what it must be): checked when a config is loaded, so a bad value stops the run
# before any work starts instead of deep inside a stage.
RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("data.num_train_videos", _at_least(0), "0 or more"),
    ("data.num_val_videos", _at_least(0), "0 or more"),
    ("data.action_clips_per_class", _at_least(0), "0 or more"),
    ("data.width", _at_least(16), "at least 16 pixels"),
    ("data.height", _at_least(16), "at least 16 pixels"),
    ("data.fps", _positive, "positive"),
    ("data.min_step_seconds", _positive, "positive"),
    ("data.max_steps", _at_least(1), "at least 1"),
    ("data.action_clip_seconds", _positive, "positive"),
    ("data.occlusion_prob", _share, "in [0, 1]"),
    ("data.captions_per_segment", _at_least(1), "at least 1"),
    ("video.fps", _positive, "positive"),
    ("video.clip_frames", _at_least(1), "at least 1"),
    ("video.crop_size", _at_least(1), "at least 1"),
    ("features.batch_size", _at_least(1), "at least 1"),
    ("features.num_workers", _at_least(0), "0 or more"),
    ("vocab.k", _at_least(2), "at least 2 (clusters per node)"),
    ("vocab.depth", _at_least(1), "at least 1"),
    ("vocab.sample_size", _at_least(1), "at least 1"),
    ("vocab.n_init", _at_least(1), "at least 1"),
    ("vocab.max_iter", _at_least(1), "at least 1"),
    ("vocab.tol", _at_least(0), "0 or more"),
    ("vocab.words_per_segment", _at_least(1), "at least 1"),
    ("text.vocab_size", _at_least(8), "at least 8"),
    ("model.hidden_size", _at_least(1), "at least 1"),
    ("model.num_layers", _at_least(1), "at least 1"),
    ("model.num_heads", _at_least(1), "at least 1"),
    ("model.intermediate_size", _at_least(1), "at least 1"),
    ("model.max_position_embeddings", _at_least(4), "at least 4"),
    ("model.type_vocab_size", _at_least(2), "at least 2 (text and video)"),
    ("model.hidden_dropout", _share, "between 0 and 1"),
    ("model.attention_dropout", _share, "between 0 and 1"),
    ("model.layer_norm_eps", _positive, "positive"),
    ("pretrain.steps", _at_least(1), "at least 1"),
    ("pretrain.batch_size", _at_least(1), "at least 1"),
    ("pretrain.lr", _positive, "positive"),
    ("pretrain.weight_decay", _at_least(0), "0 or more"),
    ("pretrain.warmup_steps", _at_least(0), "0 or more"),
    ("pretrain.grad_accum", _at_least(1), "at least 1"),
    ("pretrain.clip_grad", _at_least(0), "0 (off) or more"),
    ("pretrain.mask_prob", lambda v: 0.0 < v <= 1.0, "above 0 and at most 1"),
    ("pretrain.mask_frac", _share, "between 0 and 1"),
    ("pretrain.random_frac", _share, "between 0 and 1"),
    ("pretrain.max_seq_len", _at_least(8), "at least 8"),
    ("pretrain.max_text_len", _at_least(1), "at least 1"),
    ("pretrain.max_concat_sentences", _at_least(1), "at least 1"),
    ("pretrain.max_subsample", _at_least(1), "at least 1"),
    ("pretrain.video_only_len", _at_least(1), "at least 1"),
    ("pretrain.num_workers", _at_least(0), "0 or more"),
    ("pretrain.keep_checkpoints", _at_least(0), "0 (keep all) or more"),
    ("pretrain.log_every", _at_least(1), "at least 1"),
    ("pretrain.checkpoint_every", _at_least(1), "at least 1"),
    ("pretrain.alignment_share", _share, "between 0 and 1"),
    ("pretrain.negative_prob", _share, "between 0 and 1"),
    ("pretrain.alignment_from_step", _at_least(0), "0 or more"),
    ("pretrain.negative_same_video", _share, "between 0 and 1"),
    ("eval.caption_epochs", _at_least(1), "at least 1"),
    ("eval.caption_lr", _positive, "positive"),
    ("eval.caption_batch_size", _at_least(1), "at least 1"),
    ("eval.caption_max_len", _at_least(1), "at least 1"),
    ("eval.caption_beam_size", _at_least(1), "at least 1"),
    ("eval.caption_min_count", _at_least(1), "at least 1"),
    ("eval.retrieval_max_videos", _at_least(0), "0 (no cap) or more"),
]


def validate(config: Config) -> None:
    """Refuse values no stage can work with (a ConfigError naming the setting and what it must be)."""
    data = config.to_dict()
    for dotted, ok, must in RULES:
        section, key = dotted.split(".")
        value = data[section][key]
        if not ok(value):
            raise ConfigError(f"{dotted}: must be {must}, got {value!r}")
    model, pretrain = data["model"], data["pretrain"]
    if model["hidden_size"] % model["num_heads"]:
        raise ConfigError(
            f"model.num_heads: {model['num_heads']} does not divide model.hidden_size {model['hidden_size']}"
        )
    if pretrain["mask_frac"] + pretrain["random_frac"] > 1.0:
        raise ConfigError(
            f"pretrain.random_frac: mask_frac {pretrain['mask_frac']} + random_frac "
            f"{pretrain['random_frac']} exceed 1"
        )
    mix = pretrain["regime_mix"]
    if len(mix) != 3 or any(share < 0 for share in mix) or sum(mix) <= 0:
        raise ConfigError(
            f"pretrain.regime_mix: must be three shares (text-only, video-only, video-text), "
            f"none negative, not all 0; got {list(mix)}"
        )
    if data["data"]["min_step_seconds"] > data["data"]["max_step_seconds"]:
        raise ConfigError(
            f"data.max_step_seconds: {data['data']['max_step_seconds']} is below "
            f"data.min_step_seconds {data['data']['min_step_seconds']}"
        )
    if any(k < 1 for k in data["eval"]["top_k"]):
        raise ConfigError(f"eval.top_k: every k must be at least 1, got {list(data['eval']['top_k'])}")
