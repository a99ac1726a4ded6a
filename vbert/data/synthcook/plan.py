"""Plan a video before drawing it: which recipe, which steps, when each starts and ends.

Plans are cheap (no pixels), so narration text for tokenizer training can be made from
thousands of plans without rendering. Every plan is a pure function of (seed, subset, index).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vbert.config import DataConfig
from vbert.data.synthcook.captions import references
from vbert.data.synthcook.world import FITS, RECIPES, VERBS

SUBSET_CODES = {"training": 0, "validation": 1, "action": 2, "corpus": 3}
# Independent random streams of one video, so that adding one leaves the others' draws unchanged.
PLAN, OCCLUSION, CAPTIONS = 0, 5, 6
ID_PREFIX = {"training": "sc_train", "validation": "sc_val", "corpus": "sc_text"}


@dataclass
class StepPlan:
    """One recipe step on the timeline."""

    verb: str
    noun: str
    start: float
    end: float
    references: list[str] = field(default_factory=list)  # annotators' captions (`captions.py`)
    occluded: bool = False  # the action is hidden from the camera (`DataConfig.occlusion_prob`)

    @property
    def sentence(self) -> str:
        """The first reference caption (YouCook2's one `sentence` per segment)."""
        return self.references[0]


@dataclass
class VideoPlan:
    """A whole cooking video: its recipe, its steps in order, and its length."""

    video_id: str
    subset: str
    recipe: str
    steps: list[StepPlan]
    duration: float
    seed: list[int] = field(default_factory=list)  # the seed its pixels and narration derive from


def rng_for(seed: int, subset: str, index: int, purpose: int = 0) -> np.random.Generator:
    """An independent random stream for one (seed, subset, item, purpose)."""
    return np.random.default_rng([seed, SUBSET_CODES[subset], index, purpose])


def choose_steps(recipe_name: str, rng: np.random.Generator, max_steps: int) -> list[tuple[str, str]]:
    """Pick the steps of one telling of a recipe: optional steps by chance, one choice per slot."""
    steps = RECIPES[recipe_name].steps
    kept = [i for i, s in enumerate(steps) if s.keep >= 1.0 or rng.random() < s.keep]
    optional_left = [i for i, s in enumerate(steps) if i not in kept]
    while len(kept) < min(4, len(steps)) and optional_left:  # at least 4 steps when the recipe has them
        kept.append(optional_left.pop(int(rng.integers(len(optional_left)))))
    kept.sort()
    while len(kept) > max_steps:  # drop optional steps first, then the last ones
        optional = [i for i in kept if steps[i].keep < 1.0]
        kept.remove(optional[int(rng.integers(len(optional)))] if optional else kept[-1])
    return [steps[i].choices[int(rng.integers(len(steps[i].choices)))] for i in kept]


def plan_video(seed: int, subset: str, index: int, data: DataConfig) -> VideoPlan:
    """Plan video `index` of a subset: recipe, steps with lengths in [min, max] s and short pauses between."""
    rng = rng_for(seed, subset, index)
    recipe = sorted(RECIPES)[int(rng.integers(len(RECIPES)))]
    pairs = choose_steps(recipe, rng, data.max_steps)
    t = float(rng.uniform(0.4, 1.2))  # the video opens before the first step
    steps = []
    for verb, noun in pairs:
        length = float(rng.uniform(data.min_step_seconds, data.max_step_seconds))
        steps.append(StepPlan(verb, noun, round(t, 2), round(t + length, 2)))
        t += length + float(rng.uniform(0.2, 1.2))  # a pause: the next ingredient is brought in
    duration = round(steps[-1].end + float(rng.uniform(0.4, 1.0)), 2)
    hide, write = rng_for(seed, subset, index, OCCLUSION), rng_for(seed, subset, index, CAPTIONS)
    for step in steps:
        step.occluded = bool(hide.random() < data.occlusion_prob)
        step.references = references(step.verb, step.noun, recipe, data.captions_per_segment, write)
    prefix = ID_PREFIX.get(subset, subset)
    return VideoPlan(
        f"{prefix}_{index:05d}", subset, recipe, steps, duration, [seed, SUBSET_CODES[subset], index]
    )


@dataclass
class ActionClipPlan:
    """One labelled single-action clip (the role Kinetics plays): a verb done to a noun."""

    clip_id: str
    verb: str
    noun: str
    subset: str
    offset: float  # how far into the action the clip starts (seconds)
    seed: list[int]


def plan_action_clips(seed: int, data: DataConfig) -> list[ActionClipPlan]:
    """`action_clips_per_class` clips per verb, nouns that fit the verb balanced across the set.

    Every fourth clip of a verb is held out for validation, so the subsets are disjoint and each
    verb has both. Each clip starts a random time into its action, as clips cut from a video do.
    """
    rng = rng_for(seed, "action", 0)
    noun_counts: dict[str, int] = {}
    plans = []
    for verb in VERBS:
        for i in range(data.action_clips_per_class):
            fits = list(FITS[verb])
            least = min(noun_counts.get(n, 0) for n in fits)
            candidates = [n for n in fits if noun_counts.get(n, 0) == least]
            noun = candidates[int(rng.integers(len(candidates)))]
            noun_counts[noun] = noun_counts.get(noun, 0) + 1
            subset = "validation" if i % 4 == 3 else "training"
            offset = float(rng.uniform(0.0, max(0.0, data.max_step_seconds - data.action_clip_seconds)))
            clip_id = f"{verb}_{i:04d}"
            plans.append(ActionClipPlan(clip_id, verb, noun, subset, round(offset, 2), [seed, 2, len(plans)]))
    return plans
