"""BERT masking: the 15% / 80-10-10 rates, special tokens, replacement ranges, fixed-size positions."""

from __future__ import annotations

import pytest
import torch

from vbert.bert.masking import mask_tokens, predicted_positions, prediction_capacity, special_tokens_mask
from vbert.bert.model import IGNORE_INDEX

MASK, CLS, SEP, PAD = 4, 2, 3, 0


def _ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    ids = torch.randint(10, 1000, (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0], ids[:, -1] = CLS, SEP
    ids[::3, -4:-1] = PAD
    return ids


def test_rates_match_bert_recipe_statistically() -> None:
    ids = _ids(400, 256)  # ~100k tokens
    special = special_tokens_mask(ids, [CLS, SEP, PAD])
    masked, labels = mask_tokens(ids, special, MASK, (10, 1000), generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE_INDEX
    eligible = int((~special).sum())
    n = int(chosen.sum())
    # binomial standard deviations: 0.15 of ~100k -> sd 0.0011; 0.8 of ~15k -> sd 0.0033
    assert abs(n / eligible - 0.15) < 0.006
    became_mask = (masked == MASK) & chosen
    unchanged = (masked == ids) & chosen
    replaced = chosen & ~became_mask & ~unchanged
    assert abs(became_mask.sum().item() / n - 0.8) < 0.017
    assert abs(replaced.sum().item() / n - 0.1) < 0.013
    assert abs(unchanged.sum().item() / n - 0.1) < 0.013
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])  # nothing else is touched


def test_special_tokens_are_never_chosen() -> None:
    ids = _ids(50, 32)
    special = special_tokens_mask(ids, [CLS, SEP, PAD])
    assert special[:, 0].all() and special[:, -1].all() and special[::3, -4:-1].all()
    masked, labels = mask_tokens(ids, special, MASK, (10, 1000), mask_prob=1.0)
    assert torch.all(labels[special] == IGNORE_INDEX)
    assert torch.equal(masked[special], ids[special])
    assert torch.all(labels[~special] == ids[~special])  # mask_prob=1 chooses every other token


def test_rates_are_arguments() -> None:
    ids = _ids(100, 64)
    special = special_tokens_mask(ids, [CLS, SEP, PAD])
    masked, labels = mask_tokens(
        ids,
        special,
        MASK,
        (10, 1000),
        mask_prob=0.5,
        mask_frac=0.0,
        random_frac=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    chosen = labels != IGNORE_INDEX
    assert abs(chosen.sum().item() / (~special).sum().item() - 0.5) < 0.03
    assert not (masked == MASK).any()
    assert ((masked != ids) & chosen).sum() / chosen.sum() > 0.99  # all replaced (rare same-id draws)
    masked, labels = mask_tokens(ids, special, MASK, (10, 1000), mask_prob=0.0)
    assert torch.equal(masked, ids) and torch.all(labels == IGNORE_INDEX)


def test_random_replacements_come_from_the_given_range_per_position() -> None:
    ids = _ids(200, 40)
    ids[:, 20:] = torch.randint(5000, 5036, (200, 20))  # the "video" half uses another id range
    special = special_tokens_mask(ids, [CLS, SEP, PAD])
    low = torch.where(torch.arange(40) < 20, 10, 5000).expand(200, 40)  # [B, L]
    high = torch.where(torch.arange(40) < 20, 1000, 5036).expand(200, 40)
    masked, labels = mask_tokens(
        ids,
        special,
        MASK,
        (low, high),
        mask_prob=1.0,
        mask_frac=0.0,
        random_frac=1.0,
        generator=torch.Generator().manual_seed(3),
    )
    chosen = labels != IGNORE_INDEX
    text, video = masked[:, 1:20][chosen[:, 1:20]], masked[:, 20:][chosen[:, 20:]]
    assert text.min() >= 10 and text.max() < 1000
    assert video.min() >= 5000 and video.max() < 5036
    assert len(torch.unique(video)) == 36  # the whole range is reachable, its ends included


def test_generator_makes_masking_reproducible() -> None:
    ids = _ids(8, 30)
    special = special_tokens_mask(ids, [CLS, SEP, PAD])
    a = mask_tokens(ids, special, MASK, (10, 1000), generator=torch.Generator().manual_seed(7))
    b = mask_tokens(ids, special, MASK, (10, 1000), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_prob": 1.5}, "mask_prob"),
        ({"mask_frac": 0.8, "random_frac": 0.3}, "sum to"),
        ({"vocab_range": (10, 10)}, "low < high"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    ids = _ids(2, 8)
    args = {"vocab_range": (10, 1000), **kwargs}
    with pytest.raises(ValueError, match=message):
        mask_tokens(ids, torch.zeros_like(ids, dtype=torch.bool), MASK, **args)


def test_predicted_positions_with_and_without_capacity() -> None:
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[0, 1], labels[1, 3] = 42, 7
    positions, targets = predicted_positions(labels)
    assert positions.tolist() == [1, 8] and targets.tolist() == [42, 7]
    positions, targets = predicted_positions(labels, capacity=4)
    assert positions.tolist() == [1, 8, 0, 0] and targets.tolist() == [42, 7, IGNORE_INDEX, IGNORE_INDEX]
    with pytest.raises(ValueError, match="capacity 1"):
        predicted_positions(labels, capacity=1)
    cap = prediction_capacity(128 * 128, 0.15)
    assert 0.15 * 128 * 128 < cap < 0.17 * 128 * 128
