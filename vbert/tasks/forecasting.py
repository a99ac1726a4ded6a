"""Forecasting: given the visual words so far, predict the next ones, then read off the next step.

    [CLS] v... (the video up to the end of step i) [MASK] x n [SEP]     (video-only sequence)

The n masked positions are filled left to right (`vbert.tasks.generation.fill_visual_masks`).
To measure it against the recipe, the forecast words are read with the zero-shot template: the
verb and noun VideoBERT names for the forecast are compared with the true next step's verb and
noun. Two reference rows frame the number: reading the current step's own words (a model that
predicts "the same again"), and reading the true next step's words (the zero-shot accuracy an
exact forecast would get). Given the training videos, two baselines that need no reading follow,
scored on the labels themselves: the current step again, and the step that most often follows the
current one in the training videos (a recipe's statistics, with no video read). Visual-word accuracy
compares forecast and true words position by position.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from vbert.errors import VbertError
from vbert.tasks.action_table import zero_shot_row
from vbert.tasks.data import EvalVideo
from vbert.tasks.generation import fill_visual_masks


def forecast(model: Any, vocab: Any, context: Sequence[int], num_words: int, max_len: int = 128) -> list[int]:
    """The next `num_words` visual words after `context` (the most recent words that fit are kept)."""
    if num_words < 1 or num_words > max_len - 3:
        raise VbertError(f"num_words must be in [1, {max_len - 3}], got {num_words}")
    context = list(context)[-(max_len - 2 - num_words) :]
    if not context:
        raise VbertError("forecasting needs at least one visual word of context")
    ids, types = vocab.sequence(video=[*vocab.visual_ids(context).tolist(), *[vocab.mask_id] * num_words])
    start = 1 + len(context)
    return fill_visual_masks(model, vocab, ids.tolist(), types.tolist(), range(start, start + num_words))


def forecasting_examples(videos: Sequence[EvalVideo], max_words: int = 8) -> list[dict[str, Any]]:
    """(context, current step, true next step) for every step that has a next step with visual words."""
    out = []
    for video in videos:
        steps = [s for s in video.segments if s.video_words]
        for i in range(len(steps) - 1):
            context = [w for s in steps[: i + 1] for w in s.video_words]
            out.append(
                {
                    "video_id": video.video_id,
                    "context": context,
                    "current": steps[i],
                    "next": steps[i + 1],
                    "target": steps[i + 1].video_words[:max_words],
                }
            )
    if not out:
        raise VbertError("no video has two consecutive steps with visual words to forecast from")
    return out


def next_step_counts(videos: Sequence[EvalVideo]) -> dict[tuple, Counter]:
    """For each (verb, noun) step of the videos, how often each (verb, noun) step comes next."""
    counts: dict[tuple, Counter] = {}
    for video in videos:
        steps = [(s.verb, s.noun) for s in video.segments]
        for here, after in zip(steps, steps[1:]):
            counts.setdefault(here, Counter())[after] += 1
    return counts


def label_baselines(examples: Sequence[dict[str, Any]], train_videos: Sequence[EvalVideo]) -> dict[str, dict]:
    """Verb/noun top-1 (percent) of two forecasts read from labels: the current step again, and the
    step that most often follows it in `train_videos` (the most common step overall when it never occurs)."""
    counts = next_step_counts(train_videos)
    overall = Counter(after for followers in counts.values() for after in followers.elements())
    if not overall:
        raise VbertError("the training videos have no step followed by another: no next-step statistics")
    fallback = overall.most_common(1)[0][0]
    guesses = {
        "repeat the current step (labels)": [(e["current"].verb, e["current"].noun) for e in examples],
        "most common next step (training statistics)": [
            counts[key].most_common(1)[0][0] if key in counts else fallback
            for key in ((e["current"].verb, e["current"].noun) for e in examples)
        ],
    }
    rows = {}
    for name, guessed in guesses.items():
        verb = sum(g[0] == e["next"].verb for g, e in zip(guessed, examples))
        noun = sum(g[1] == e["next"].noun for g, e in zip(guessed, examples))
        rows[name] = {"verb top-1": 100.0 * verb / len(examples), "noun top-1": 100.0 * noun / len(examples)}
    return rows


def word_accuracy(predicted: Sequence[Sequence[int]], target: Sequence[Sequence[int]]) -> float:
    """Percent of positions where the forecast word equals the true word."""
    hits = sum(int(p == t) for ps, ts in zip(predicted, target) for p, t in zip(ps, ts))
    total = sum(min(len(ps), len(ts)) for ps, ts in zip(predicted, target))
    return 100.0 * hits / max(1, total)


def forecasting_table(
    model: Any,
    tokenizer: Any,
    vocab: Any,
    videos: Sequence[EvalVideo],
    template: str,
    verbs: Sequence[str],
    nouns: Sequence[str],
    max_len: int = 128,
    max_words: int = 8,
    train_videos: Sequence[EvalVideo] | None = None,
) -> dict[str, Any]:
    """Next-step verb/noun top-1 (percent) of the forecast, the two reference readings and, given the
    training videos, the two label baselines; word accuracy."""
    examples = forecasting_examples(videos, max_words)
    predicted = [forecast(model, vocab, e["context"], len(e["target"]), max_len) for e in examples]
    gold = [e["next"] for e in examples]

    def read(words: list[list[int]]) -> dict[str, float]:
        segments = [dataclasses.replace(g, video_words=list(w)) for g, w in zip(gold, words)]
        return zero_shot_row(
            model, tokenizer, vocab, segments, template, verbs, nouns, max_len=max_len, ks=(1,)
        )

    rows = {
        "forecast (VideoBERT)": read(predicted),
        "current step's words (same again)": read([e["current"].video_words for e in examples]),
        "true next step's words (exact forecast)": read([e["target"] for e in examples]),
    }
    if train_videos is not None:
        rows.update(label_baselines(examples, train_videos))
    repeat = [e["current"].video_words[-1:] * len(e["target"]) for e in examples]
    return {
        "rows": rows,
        "num_examples": len(examples),
        "word_accuracy": word_accuracy(predicted, [e["target"] for e in examples]),
        "word_accuracy_repeat_last": word_accuracy(repeat, [e["target"] for e in examples]),
        "examples": examples,
        "predicted": predicted,
    }
