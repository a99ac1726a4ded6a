"""Clip -> 1024-d vector: the extractors behind one interface, chosen by name.

The paper feeds each 30-frame (1.5 s) clip to S3D pretrained on Kinetics and keeps the 1024
activations before the classifier, average-pooled over time and space. Three extractors
produce vectors of that same size:

- ``s3d``: torchvision's S3D. Weights ``kinetics400`` (torchvision's download, cached by
  torch.hub), a local state-dict file, or ``none`` (random: the features carry little meaning).
- ``resnet``: the per-frame approach many tutorials take: an ImageNet ResNet-50 on each frame,
  its 2048-d pooled vector averaged over the clip's frames, then pooled to 1024-d by averaging
  neighbouring channel pairs (parameter-free: channel ``2i`` and ``2i+1`` become output ``i``).
  It sees appearance only; the order of frames is lost.
- ``course``: the course's small S3D-style network (`vbert.features.course_s3d`), trained on SynthCook's
  labelled action clips the way S3D was trained on Kinetics; ``default`` loads the committed
  checkpoint in ``vbert/assets``.

Every extractor takes clips as uint8 RGB ``[N, T, H, W, 3]`` at any crop size (pooling is
global), normalises them its own way (documented per extractor) and returns float32 ``[N, 1024]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vbert.core.manifest import file_sha256
from vbert.core.weights import load_matching, load_state_dict
from vbert.errors import ConfigError, DataError
from vbert.features import course_s3d

FEATURE_DIM = 1024  # the paper's S3D pre-classifier width
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)  # torchvision's video presets (Kinetics-400)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_WEIGHTS_WARNING = "random weights: the features carry little meaning (use them as a baseline only)"


class Extractor:
    """A frozen network that maps uint8 clips [N, T, H, W, 3] to float32 features [N, dim]."""

    def __init__(
        self,
        name: str,
        network: nn.Module,
        embed: Callable[[torch.Tensor], torch.Tensor],
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        device: torch.device,
        weights: str,
        dim: int = FEATURE_DIM,
    ) -> None:
        self.name, self.weights, self.dim = name, weights, dim
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self._embed = embed
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1, 1)

    def __repr__(self) -> str:
        return (
            f"Extractor(name={self.name!r}, weights={self.weights!r}, dim={self.dim}, device={self.device})"
        )

    def preprocess(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [N, T, H, W, 3] -> normalised float32 [N, 3, T, H, W] on the extractor's device."""
        x = torch.as_tensor(clips)
        if x.ndim != 5 or x.shape[-1] != 3:
            raise DataError(
                f"{self.name} extractor: expected clips [N, T, H, W, 3], got shape {list(x.shape)}"
            )
        if x.dtype != torch.uint8:
            raise DataError(f"{self.name} extractor: expected uint8 RGB clips, got {x.dtype}")
        x = x.to(self.device, non_blocking=True).permute(0, 4, 1, 2, 3).float() / 255.0  # [N, 3, T, H, W]
        return (x - self._mean) / self._std

    @torch.inference_mode()
    def __call__(self, clips: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """Features float32 [N, dim] of uint8 clips [N, T, H, W, 3], `batch_size` clips at a time."""
        if len(clips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        use_bf16 = self.device.type == "cuda"
        for i in range(0, len(clips), batch_size):
            x = self.preprocess(clips[i : i + batch_size])  # [B, 3, T, H, W]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                features = self._embed(x)  # [B, dim]
            out.append(features.float().cpu().numpy())
        return np.concatenate(out)


def _download_weights(enum_value: Any, source: str) -> dict[str, torch.Tensor]:
    """torchvision's weights API (download once, cached by torch.hub); a clear error offline."""
    try:
        return enum_value.get_state_dict(progress=False, check_hash=True)
    except Exception as err:
        raise DataError(
            f"cannot download {source} weights ({type(err).__name__}: {err}); without a network, "
            "give a local file (features.weights=/path/to/file.pth) or weights 'none'"
        ) from None


def _weight_choice(name: str, weights: str, named: tuple[str, ...]) -> str:
    """Check `weights` for extractor `name`: a named set, 'none', or an existing local file."""
    if weights in named or weights == "none":
        return weights
    if not Path(weights).expanduser().is_file():
        raise ConfigError(
            f"{name} extractor: weights '{weights}' is neither one of {', '.join((*named, 'none'))} "
            "nor an existing file"
        )
    return str(Path(weights).expanduser())


# ---------------------------------------------------------------- the extractors


def _seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Construct a network with a fixed seed, so random-weight baselines agree across runs and ranks."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def build_s3d(weights: str = "kinetics400", device: str | torch.device = "cpu", seed: int = 0) -> Extractor:
    """torchvision's S3D; features: `features` trunk, mean over (T, H, W) -> [N, 1024]."""
    from torchvision.models.video import S3D_Weights, s3d

    choice = _weight_choice("s3d", "kinetics400" if weights == "default" else weights, ("kinetics400",))
    network = _seeded(lambda: s3d(weights=None, num_classes=400), seed)
    if choice == "kinetics400":
        load_matching(
            network,
            _download_weights(S3D_Weights.KINETICS400_V1, "S3D Kinetics-400"),
            "S3D Kinetics-400",
            ("features.",),
        )
    elif choice == "none":
        warnings.warn(f"s3d extractor: {RANDOM_WEIGHTS_WARNING}", UserWarning, stacklevel=2)
    else:
        load_matching(network, load_state_dict(choice, unwrap=True), choice, ("features.",))
    network.classifier = nn.Identity()  # only the trunk is used

    def embed(x: torch.Tensor) -> torch.Tensor:
        return network.features(x).mean(dim=(2, 3, 4))  # [N, 1024, t, h, w] -> [N, 1024]

    return Extractor("s3d", network, embed, KINETICS_MEAN, KINETICS_STD, torch.device(device), choice)


def build_resnet(
    weights: str = "imagenet1k", device: str | torch.device = "cpu", seed: int = 0, frames: int = 8
) -> Extractor:
    """Per-frame ResNet-50: 2048-d per frame, averaged over `frames` evenly spaced frames, pooled to 1024."""
    from torchvision.models import ResNet50_Weights, resnet50

    choice = _weight_choice("resnet", "imagenet1k" if weights == "default" else weights, ("imagenet1k",))
    network = _seeded(lambda: resnet50(weights=None), seed)
    if choice == "imagenet1k":
        load_matching(
            network,
            _download_weights(ResNet50_Weights.IMAGENET1K_V2, "ResNet-50 ImageNet"),
            "ResNet-50 ImageNet",
            ("conv1.", "bn1.", "layer"),
        )
    elif choice == "none":
        warnings.warn(f"resnet extractor: {RANDOM_WEIGHTS_WARNING}", UserWarning, stacklevel=2)
    else:
        load_matching(network, load_state_dict(choice, unwrap=True), choice, ("conv1.", "bn1.", "layer"))
    network.fc = nn.Identity()  # keep the 2048-d pooled vector

    def embed(x: torch.Tensor) -> torch.Tensor:
        n, c, t = x.shape[:3]
        picked = torch.linspace(0, t - 1, min(frames, t), device=x.device).round().long()
        images = x[:, :, picked].transpose(1, 2).reshape(-1, c, *x.shape[3:])  # [N * f, 3, H, W]
        per_frame = network(images).view(n, len(picked), -1)  # [N, f, 2048]
        clip = per_frame.mean(dim=1)  # [N, 2048]: the order of frames is lost here
        return clip.view(n, FEATURE_DIM, -1).mean(dim=2)  # [N, 1024]: average channel pairs

    return Extractor("resnet", network, embed, IMAGENET_MEAN, IMAGENET_STD, torch.device(device), choice)


def build_course(weights: str = "default", device: str | torch.device = "cpu", seed: int = 0) -> Extractor:
    """The course's S3D-style network: the committed checkpoint, a file from train-extractor, or random."""
    if weights in ("default", "trained"):
        weights = str(course_s3d.default_checkpoint())
    choice = _weight_choice("course", weights, ())
    if choice == "none":
        warnings.warn(f"course extractor: {RANDOM_WEIGHTS_WARNING}", UserWarning, stacklevel=2)
        network = _seeded(lambda: course_s3d.CourseS3D(course_s3d.CourseS3DConfig()), seed)
    else:
        network = course_s3d.load_checkpoint(choice)
    return Extractor(
        "course",
        network,
        network.features,
        course_s3d.INPUT_MEAN,
        course_s3d.INPUT_STD,
        torch.device(device),
        choice,
    )


EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "s3d": build_s3d,
    "resnet": build_resnet,
    "course": build_course,
}


def build_extractor(
    name: str, weights: str = "default", device: str | torch.device = "cpu", seed: int = 0
) -> Extractor:
    """The extractor called `name` ("s3d", "resnet" or "course") with `weights` on `device`.

    `seed` fixes the random initialisation of weights 'none' (the same network in every run and rank).
    """
    if name not in EXTRACTORS:
        raise ConfigError(
            f"features.extractor: unknown extractor '{name}'; choose one of {', '.join(EXTRACTORS)}"
        )
    return EXTRACTORS[name](weights=weights, device=device, seed=seed)


def weights_identity(name: str, weights: str) -> dict[str, str]:
    """What identifies an extractor's weights in a cache key: the name, or a local file's hash."""
    if name == "course" and weights in ("default", "trained"):
        weights = str(course_s3d.default_checkpoint())
    path = Path(weights).expanduser()
    if path.is_file():
        return {"extractor": name, "weights_sha256": file_sha256(path)}
    return {"extractor": name, "weights": weights}
