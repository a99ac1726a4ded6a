"""BERT's masking recipe: choose 15% of tokens; of those 80% -> [MASK], 10% -> random, 10% unchanged.

The rates are arguments. Random replacements are drawn from a given id range, which may differ
per position: VideoBERT draws replacements for text tokens from the WordPiece ids and for video
tokens from the visual-word ids, so a corrupted token never changes modality.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from vbert.bert.model import IGNORE_INDEX

IdBound = int | torch.Tensor  # a scalar id, or one per position ([B, L])


def special_tokens_mask(input_ids: torch.Tensor, special_ids: Iterable[int]) -> torch.Tensor:
    """True where input_ids [B, L] holds one of `special_ids` ([CLS], [SEP], [PAD], ...)."""
    ids = torch.as_tensor(sorted(set(special_ids)), dtype=input_ids.dtype, device=input_ids.device)
    return torch.isin(input_ids, ids)


def mask_tokens(
    input_ids: torch.Tensor,
    special_mask: torch.Tensor,
    mask_token_id: int,
    vocab_range: tuple[IdBound, IdBound],
    mask_prob: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt input_ids [B, L] for masked prediction -> (masked_ids [B, L], labels [B, L]).

    Each non-special token is chosen with probability `mask_prob`; a chosen token becomes
    `mask_token_id` with probability `mask_frac`, a random id in [low, high) with probability
    `random_frac`, and stays itself otherwise. labels hold the original id at chosen positions
    and IGNORE_INDEX (-100) elsewhere. `vocab_range` bounds may be ints or [B, L] tensors.
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    if mask_frac < 0 or random_frac < 0 or mask_frac + random_frac > 1.0 + 1e-9:
        raise ValueError(
            f"mask_frac ({mask_frac}) and random_frac ({random_frac}) must be >= 0 and sum to <= 1"
        )
    if special_mask.shape != input_ids.shape:
        raise ValueError(
            f"special_mask {tuple(special_mask.shape)} does not match input_ids {tuple(input_ids.shape)}"
        )
    low, high = vocab_range
    low_t = torch.as_tensor(low, device=input_ids.device)
    high_t = torch.as_tensor(high, device=input_ids.device)
    if bool((high_t <= low_t).any()):
        raise ValueError(f"vocab_range must have low < high, got ({low}, {high})")

    shape, device = input_ids.shape, input_ids.device
    chosen = torch.rand(shape, generator=generator, device=device) < mask_prob  # [B, L]
    chosen &= ~special_mask.bool()
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    action = torch.rand(shape, generator=generator, device=device)  # which corruption, [B, L]
    to_mask = chosen & (action < mask_frac)
    to_random = chosen & (action >= mask_frac) & (action < mask_frac + random_frac)
    draw = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)  # [B, L]
    random_ids = (low_t + (draw * (high_t - low_t)).floor().long()).clamp(max=high_t - 1).to(input_ids.dtype)

    masked = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    masked = torch.where(to_random, random_ids, masked)
    return masked, labels


def predicted_positions(
    labels: torch.Tensor, capacity: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """labels [B, L] -> (positions [N], targets [N]): flat indices of predicted tokens and their ids.

    With `capacity`, N is fixed: extra slots point at position 0 with label IGNORE_INDEX (so a
    compiled model sees static shapes); more predicted tokens than `capacity` is an error.
    Do this on the CPU in the data loader: the model then needs no host sync.
    """
    flat = labels.reshape(-1)  # [B*L]
    positions = (flat != IGNORE_INDEX).nonzero().squeeze(1)  # [n]
    targets = flat[positions]
    if capacity is None:
        return positions, targets
    if positions.numel() > capacity:
        raise ValueError(f"{positions.numel()} predicted tokens do not fit capacity {capacity}")
    pad = capacity - positions.numel()
    positions = torch.cat([positions, positions.new_zeros(pad)])
    targets = torch.cat([targets, targets.new_full((pad,), IGNORE_INDEX)])
    return positions, targets


def prediction_capacity(num_tokens: int, mask_prob: float, sigmas: float = 6.0) -> int:
    """A fixed N for `predicted_positions` that masking num_tokens exceeds ~never (mean + 6 sd)."""
    mean = num_tokens * mask_prob
    return int(min(num_tokens, mean + sigmas * (num_tokens * mask_prob * (1 - mask_prob)) ** 0.5 + 1))
