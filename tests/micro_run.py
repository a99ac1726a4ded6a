"""The micro preset the end-to-end tests run: the whole pipeline in seconds per stage."""

from __future__ import annotations

from pathlib import Path

from vbert.config import Config, load_config

# Small enough for seconds per stage; big enough that every evaluation has segments of several verbs.
MICRO_YAML = """\
preset: tiny
name: micro
data: {num_train_videos: 12, num_val_videos: 4, action_clips_per_class: 4, width: 48, height: 48,
       min_step_seconds: 1.6, max_step_seconds: 2.2, max_steps: 4, action_clip_seconds: 1.6}
video: {crop_size: 32}
features: {num_workers: 0}  # decoding in the test's own process, where a test can watch it
vocab: {k: 3, depth: 2}
text: {vocab_size: 200}
model: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}
pretrain: {steps: 8, batch_size: 8, warmup_steps: 2, log_every: 2, checkpoint_every: 4}
eval: {caption_epochs: 2, caption_batch_size: 16}
"""


def micro_config(folder: Path, *overrides: str) -> Config:
    """The micro preset, written as a YAML file of its own (`preset: tiny` plus what differs)."""
    path = folder / "micro.yaml"
    path.write_text(MICRO_YAML, encoding="utf-8")
    return load_config(path, list(overrides))
