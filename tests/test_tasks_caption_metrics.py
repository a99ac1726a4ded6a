"""Caption metrics on hand-made pairs whose scores are known in closed form."""

from __future__ import annotations

import math

import pytest

from vbert.errors import DataError
from vbert.tasks.caption_metrics import (
    caption_scores,
    format_scores,
    java_available,
    meteor_item_scores,
    tokenize_caption,
)

CORPUS = {
    "a": "cut the tomato into pieces on the board",
    "b": "crack the egg into a bowl",
    "c": "stir the noodles in the pot",
}


def test_tokenize_drops_punctuation_and_case() -> None:
    assert tokenize_caption("Cut the Tomato, then stir-fry it!") == "cut the tomato then stir-fry it"
    assert tokenize_caption("  ...  ") == ""


def test_identical_captions_score_perfectly() -> None:
    scores = caption_scores(CORPUS, dict(CORPUS), meteor=False)
    assert scores["BLEU-3"] == pytest.approx(1.0, abs=1e-6)
    assert scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert scores["ROUGE-L"] == pytest.approx(1.0)
    assert scores["CIDEr"] == pytest.approx(10.0, abs=1e-4)  # CIDEr-D: 10 x mean cosine, all cosines 1
    assert scores["METEOR"] is None


def test_disjoint_captions_score_zero() -> None:
    hyps = {
        "a": "wash blue cars quickly now",
        "b": "paint old fences gently here",
        "c": "fix broken bikes slowly today",
    }
    scores = caption_scores(CORPUS, hyps, meteor=False)
    assert scores["BLEU-4"] < 1e-6 and scores["BLEU-3"] < 1e-6
    assert scores["ROUGE-L"] == 0.0 and scores["CIDEr"] == 0.0


def test_bleu_brevity_penalty_and_rouge_by_hand() -> None:
    refs = {"x": "the cat sat on the red mat"}  # 7 words
    hyps = {"x": "the cat sat on the mat"}  # 6 words: BP = exp(1 - 7/6)
    scores = caption_scores(refs, hyps, meteor=False)
    bp = math.exp(1 - 7 / 6)
    # clipped n-gram precisions: 6/6, 4/5, 3/4, 2/3
    assert scores["BLEU-3"] == pytest.approx(bp * (1 * 4 / 5 * 3 / 4) ** (1 / 3), rel=1e-6)
    assert scores["BLEU-4"] == pytest.approx(bp * (1 * 4 / 5 * 3 / 4 * 2 / 3) ** (1 / 4), rel=1e-6)
    p, r, beta = 6 / 6, 6 / 7, 1.2  # LCS = 6
    assert scores["ROUGE-L"] == pytest.approx((1 + beta**2) * p * r / (r + beta**2 * p), rel=1e-6)


def test_multiple_references_and_formatting() -> None:
    refs = {"x": ["the cat sat on the red mat", "the cat sat on the mat"]}
    scores = caption_scores(refs, {"x": "the cat sat on the mat"}, meteor=False)
    assert scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6)  # closest reference has the same length
    shown = format_scores(scores)
    assert shown["BLEU-4"] == "100.00" and shown["METEOR"] == "missing"


def test_empty_reference_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="'b' has an empty reference"):
        caption_scores({"a": "cut the tomato", "b": " . "}, {"a": "cut the tomato", "b": "x"})


def test_mismatched_items_are_a_clear_error() -> None:
    with pytest.raises(DataError, match="different items"):
        caption_scores({"a": "cut the tomato"}, {"b": "cut the tomato"})


def test_empty_hypothesis_scores_zero_without_crash() -> None:
    scores = caption_scores({"a": "cut the tomato"}, {"a": ""}, meteor=False)
    assert scores["BLEU-4"] < 1e-6 and scores["ROUGE-L"] == 0.0


def test_meteor_missing_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vbert.tasks.caption_metrics.java_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="METEOR not computed"):
        scores = caption_scores(CORPUS, dict(CORPUS))
    assert scores["METEOR"] is None


@pytest.mark.skipif(
    not java_available(),
    reason="no `java` on PATH: METEOR (the official Meteor 1.5 jar) was not tested; install a Java runtime",
)
def test_meteor_with_java_orders_captions() -> None:
    refs = {
        "same": "crack the egg into a bowl",
        "part": "stir the noodles in the pot",
        "none": "peel the banana",
    }
    hyps = {"same": "crack the egg into a bowl", "part": "stir the pot", "none": "wash blue cars"}
    corpus, items = meteor_item_scores({k: [v] for k, v in refs.items()}, {k: [v] for k, v in hyps.items()})
    assert corpus is not None
    assert 0.9 < items["same"] <= 1.0  # only the fragmentation penalty of one chunk
    assert 0.0 < items["part"] < items["same"] and items["none"] == 0.0


def test_missing_scorers_fail_before_any_caption_model_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from vbert.config import load_config
    from vbert.tasks import caption_table

    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)  # as if not installed: importing it fails

    class NoArtifacts:  # caption_table must stop before it reads data or trains anything
        def __getattr__(self, name):
            raise AssertionError(f"artifacts.{name} was used")

    with pytest.raises(DataError, match="pip install pycocoevalcap"):
        caption_table.caption_table(load_config("tiny"), artifacts=NoArtifacts())
    with pytest.raises(DataError, match="pip install pycocoevalcap"):
        caption_scores({"a": ["cut the tomato"]}, {"a": "cut the tomato"}, meteor=False)
