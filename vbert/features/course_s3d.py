"""The course's own S3D-style clip network, its checkpoints and its input normalisation.

S3D (Xie et al., 2018) factorises each 3D convolution k x k x k into a spatial 1 x k x k
convolution followed by a temporal k x 1 x 1 one ("separable"), which is cheaper and learns
better than full 3D kernels. This network keeps that idea at a size a laptop CPU can train in
minutes: four separable stages, a 1x1x1 convolution up to 1024 channels (the paper's feature
width), and global average pooling over time and space, so any crop size works (trained on
several sizes so 64, 96 and 112 pixel presets all give meaningful features).

Input normalisation: uint8 RGB / 255, then (x - 0.45) / 0.225 on every channel.

Its training (`vbert.features.course_training`) plays the role of Kinetics pre-training. The two
label heads are dropped at extraction time; only the pooled vector is kept.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from vbert.core.weights import load_matching, load_state_dict, write_safetensors
from vbert.errors import DataError

INPUT_MEAN = (0.45, 0.45, 0.45)
INPUT_STD = (0.225, 0.225, 0.225)
CHECKPOINT_NAME = "course_s3d.safetensors"


@dataclass
class CourseS3DConfig:
    """Architecture and label sets of the course network (stored in its checkpoint)."""

    widths: tuple[int, ...] = (24, 48, 96, 192)  # channels of the stem and the three stages
    feature_dim: int = 1024  # the paper's S3D pre-classifier width
    dropout: float = 0.3
    verbs: list[str] = field(default_factory=list)
    nouns: list[str] = field(default_factory=list)


class SeparableConv3d(nn.Module):
    """S3D's factorised convolution: 1 x k x k in space, then k x 1 x 1 in time, each with BN + ReLU.

    Both halves run as 2D convolutions on reshaped tensors (frames as a batch for the spatial
    one, time x pixels as an image for the temporal one): the same arithmetic as Conv3d with
    those kernel shapes, but several times faster to train on a CPU.
    """

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int, int] = (1, 1, 1), k: int = 3) -> None:
        super().__init__()
        st, ss, _ = stride
        self.spatial = nn.Conv2d(c_in, c_out, k, stride=ss, padding=k // 2, bias=False)
        self.spatial_norm = nn.BatchNorm2d(c_out)
        self.temporal = nn.Conv2d(c_out, c_out, (k, 1), stride=(st, 1), padding=(k // 2, 0), bias=False)
        self.temporal_norm = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, T, H, W] -> [N, C', T', H', W']."""
        n, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(n * t, c, h, w)  # [N*T, C, H, W]: frames as a batch
        y = F.relu(self.spatial_norm(self.spatial(y)), inplace=True)  # [N*T, C', H', W']
        c2, h2, w2 = y.shape[1:]
        y = y.reshape(n, t, c2, h2 * w2).transpose(1, 2)  # [N, C', T, H'*W']
        y = F.relu(self.temporal_norm(self.temporal(y)), inplace=True)  # [N, C', T', H'*W']
        return y.reshape(n, c2, y.shape[2], h2, w2)


class PointwiseConv3d(nn.Module):
    """1x1x1 convolution + BN + ReLU (a per-position linear map), run as a 2D convolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, T, H, W] -> [N, C', T, H, W]."""
        n, c, t, h, w = x.shape
        y = F.relu(self.norm(self.conv(x.reshape(n, c, t, h * w))), inplace=True)  # [N, C', T, H*W]
        return y.reshape(n, -1, t, h, w)


class CourseS3D(nn.Module):
    """Separable 3D CNN: clips [N, 3, T, H, W] -> pooled features [N, 1024] -> verb and noun logits."""

    def __init__(self, config: CourseS3DConfig) -> None:
        super().__init__()
        self.config = config
        w0, w1, w2, w3 = config.widths
        self.trunk = nn.Sequential(
            SeparableConv3d(3, w0, stride=(1, 2, 2)),  # [N, w0, T, H/2, W/2]
            SeparableConv3d(w0, w1, stride=(2, 2, 2)),  # [N, w1, T/2, H/4, W/4]
            SeparableConv3d(w1, w2, stride=(2, 2, 2)),  # [N, w2, T/4, H/8, W/8]
            SeparableConv3d(w2, w2),
            SeparableConv3d(w2, w3, stride=(1, 2, 2)),  # [N, w3, T/4, H/16, W/16]
            PointwiseConv3d(w3, config.feature_dim),  # [N, 1024, t, h, w]
        )
        self.dropout = nn.Dropout(config.dropout)
        self.verb_head = nn.Linear(config.feature_dim, max(len(config.verbs), 1))
        self.noun_head = nn.Linear(config.feature_dim, max(len(config.nouns), 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised clips [N, 3, T, H, W] -> [N, 1024], averaged over time and space."""
        return self.trunk(x).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(verb logits [N, V], noun logits [N, K]) of normalised clips [N, 3, T, H, W]."""
        h = self.dropout(self.features(x))  # [N, 1024]
        return self.verb_head(h), self.noun_head(h)


# ---------------------------------------------------------------- checkpoints


def default_checkpoint() -> Path:
    """The committed checkpoint shipped in vbert/assets (a DataError if it is missing)."""
    path = Path(str(resources.files("vbert").joinpath("assets", CHECKPOINT_NAME)))
    if not path.is_file():
        raise DataError(
            f"{path}: the committed course checkpoint is missing; make one with `vbert train-extractor`"
        )
    return path


def save_checkpoint(model: CourseS3D, path: str | Path, **info: Any) -> Path:
    """Write weights (safetensors, fp32) with the architecture, labels and `info` as JSON metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "vbert-course-s3d-1", "config": json.dumps(asdict(model.config))}
    metadata.update({k: json.dumps(v) for k, v in info.items()})
    write_safetensors(path, state, metadata)
    return path


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a course checkpoint (config, labels, training command, metrics)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except Exception as err:
        raise DataError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from None
    if raw.get("format") != "vbert-course-s3d-1":
        raise DataError(f"{path}: not a course S3D checkpoint (no 'vbert-course-s3d-1' format tag)")
    return {k: (v if k == "format" else json.loads(v)) for k, v in raw.items()}


def load_checkpoint(path: str | Path) -> CourseS3D:
    """A CourseS3D rebuilt from a checkpoint written by `save_checkpoint`, in eval mode."""
    meta = checkpoint_metadata(path)
    config = meta["config"]
    config["widths"] = tuple(config["widths"])
    model = CourseS3D(CourseS3DConfig(**config))
    load_matching(model, load_state_dict(path, unwrap=True), str(path), ("",))
    return model.eval()


def normalise(clips: torch.Tensor) -> torch.Tensor:
    """uint8 [N, T, H, W, 3] -> float [N, 3, T, H, W] with the course normalisation."""
    x = clips.permute(0, 4, 1, 2, 3).float() / 255.0
    mean = torch.tensor(INPUT_MEAN, device=x.device).view(1, 3, 1, 1, 1)
    std = torch.tensor(INPUT_STD, device=x.device).view(1, 3, 1, 1, 1)
    return (x - mean) / std
