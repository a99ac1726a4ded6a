"""ASR-style narration of a planned video: word-level, lower case, noisy, loosely aligned.

Like YouTube speech recognition on HowTo100M: no punctuation, many phrasings and synonyms for
each step, filler words, off-topic chatter, speech that starts before or after the step it
is about, steps nobody talks about, and the odd misheard word. The zero-shot probe sentence
"now let me show you how to [MASK] the [MASK]" never occurs (checked when building each
narration, and by a test), or zero-shot results would measure memorisation.
"""

from __future__ import annotations

import re

import numpy as np

from vbert.config import DataConfig
from vbert.data.dataset import Narration
from vbert.data.synthcook.plan import VideoPlan, plan_video
from vbert.data.synthcook.world import NOUNS, VERBS

# {v}: verb base form, {ving}: -ing form, {n}: noun. At least 20 phrasings of a step.
STEP_TEMPLATES = (
    "now we {v} the {n}",
    "next {v} the {n}",
    "i am going to {v} the {n}",
    "we are going to {v} some {n}",
    "so {ving} the {n} here",
    "you want to {v} your {n}",
    "then {v} the {n} like this",
    "and now i am {ving} the {n}",
    "just {v} the {n} a little bit",
    "after that we {v} the {n}",
    "go ahead and {v} the {n}",
    "time to {v} the {n}",
    "{v} the {n} nice and slow",
    "here i am {ving} some {n}",
    "make sure you {v} the {n} well",
    "i like to {v} my {n} first",
    "we will {v} the {n} for a bit",
    "take your {n} and {v} it",
    "keep {ving} the {n}",
    "{ving} the {n} right now",
    "this is where we {v} the {n}",
    "what we do now is {v} the {n}",
    "alright {v} the {n}",
    "the next step is {ving} the {n}",
    "you can {v} the {n} now",
    "i am just {ving} this {n}",
)
# Phrasings that name only the verb or only the noun (real speech often does).
PARTIAL_TEMPLATES = (
    "now {v} it",
    "and {v} it again",
    "keep {ving}",
    "grab the {n}",
    "here is the {n}",
    "this {n} looks really good",
)
AFTER_TEMPLATES = ("that is the {n} done", "see how i {v} the {n}", "so the {n} is ready")
CHATTER = (
    "hey guys welcome back to my kitchen",
    "thanks for watching",
    "please subscribe for more videos",
    "my kids really love this one",
    "it is a sunny day here",
    "i got this pan from my mom",
    "sorry the phone is ringing",
    "leave a comment below",
    "this is my favorite part",
    "it smells really good already",
    "i made this for my family last week",
    "do not forget to like the video",
    "we are almost done",
    "you can find the recipe in the description",
    "oh that is hot",
    "the music is a bit loud sorry",
    "my dog is watching me",
    "this is so easy",
    "be careful with this one",
    "it only takes a few minutes",
)
FILLERS = ("um", "uh", "so", "okay", "alright", "you know", "like", "well", "yeah", "and")
MISHEARD = {
    "whisk": "risk",
    "peel": "peal",
    "roll": "role",
    "stir": "steer",
    "dice": "dies",
    "beat": "beet",
    "pepper": "paper",
    "flour": "flower",
    "sear": "seer",
    "fry": "fly",
    "boil": "boy",
}
FORBIDDEN = re.compile(r"\blet me show you how to\b|\bshow you how to\b")
WORDS_PER_SECOND = (2.6, 3.4)


def _fill(template: str, verb: str, noun: str, rng: np.random.Generator) -> list[str]:
    base, ing = VERBS[verb].synonyms[int(rng.integers(len(VERBS[verb].synonyms)))]
    name = NOUNS[noun].synonyms[int(rng.integers(len(NOUNS[noun].synonyms)))]
    return template.format(v=base, ving=ing, n=name).split()


def _noisy(words: list[str], rng: np.random.Generator) -> list[str]:
    """Add fillers and the occasional misheard word."""
    out = []
    if rng.random() < 0.3:
        out += FILLERS[int(rng.integers(len(FILLERS)))].split()
    for word in words:
        if word in MISHEARD and rng.random() < 0.04:
            word = MISHEARD[word]
        out.append(word)
        if rng.random() < 0.05:
            out += FILLERS[int(rng.integers(len(FILLERS)))].split()
    return out


def utterances(plan: VideoPlan, rng: np.random.Generator) -> list[tuple[float, list[str]]]:
    """What is said and when it would start, before laying the words out in time."""
    said: list[tuple[float, list[str]]] = []
    if rng.random() < 0.6:
        said.append((0.0, CHATTER[int(rng.integers(len(CHATTER)))].split()))
    for step in plan.steps:
        length = step.end - step.start
        if rng.random() < 0.15:  # nobody talks about this step
            continue
        drift = float(np.clip(rng.normal(0.0, 0.8), -2.0, 2.5))  # before (< 0) or after its step
        templates = PARTIAL_TEMPLATES if rng.random() < 0.12 else STEP_TEMPLATES
        template = templates[int(rng.integers(len(templates)))]
        said.append((step.start + drift, _noisy(_fill(template, step.verb, step.noun, rng), rng)))
        if length > 3.5 and rng.random() < 0.35:  # a second remark later in a long step
            late = AFTER_TEMPLATES if rng.random() < 0.4 else STEP_TEMPLATES
            said.append(
                (
                    step.start + 0.6 * length,
                    _noisy(_fill(late[int(rng.integers(len(late)))], step.verb, step.noun, rng), rng),
                )
            )
        if rng.random() < 0.15:
            said.append((step.end + 0.2, CHATTER[int(rng.integers(len(CHATTER)))].split()))
    if rng.random() < 0.5:
        said.append((plan.duration - 2.0, CHATTER[int(rng.integers(len(CHATTER)))].split()))
    return sorted(said, key=lambda item: item[0])


def narrate(plan: VideoPlan, seed: list[int] | None = None) -> dict[str, list]:
    """The word-level narration of a plan: {"text": [word, ...], "start": [...], "end": [...]} in seconds."""
    rng = np.random.default_rng((seed or plan.seed) + [7])
    rate = float(rng.uniform(*WORDS_PER_SECOND))
    text, starts, ends = [], [], []
    clock = 0.0
    for wanted, words in utterances(plan, rng):
        t = max(wanted, clock + (0.75 if text else 0.0))  # a pause > 0.6 s separates utterances
        for word in words:
            length = (0.55 + 0.06 * len(word)) / rate * float(rng.uniform(0.85, 1.15))
            if t + length > plan.duration:
                break
            text.append(word)
            starts.append(round(t, 3))
            ends.append(round(t + length, 3))
            t += length + float(rng.uniform(0.02, 0.12))
        clock = ends[-1] if ends else clock
    joined = " ".join(text)
    if FORBIDDEN.search(joined):  # cannot happen with the phrases above; guard against future edits
        raise AssertionError(f"narration of {plan.video_id} contains the zero-shot probe phrase")
    return {"text": text, "start": starts, "end": ends}


def narration_corpus(num_videos: int, seed: int) -> list[str]:
    """Narration sentences of `num_videos` planned (not rendered) videos: text to train a tokenizer on."""
    data = DataConfig()
    sentences = []
    for index in range(num_videos):
        plan = plan_video(seed, "corpus", index, data)
        spoken = narrate(plan)
        narration = Narration(spoken["text"], spoken["start"], spoken["end"])
        sentences += [s.text for s in narration.sentences()]
    return sentences
