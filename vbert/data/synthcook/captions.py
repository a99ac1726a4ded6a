"""Reference captions of SynthCook's steps, written the way annotators write them.

YouCook2's captions are short imperative sentences by human annotators: each names the action and
the ingredient in words of its own, and many add what the video shows about it, such as the pot or
bowl it happens in, or the dish it is for. Here several annotators caption every step: each picks a
phrasing of the verb, a way to name the ingredient, and whether to mention where it happens and
which dish it is for. The dish is never visible in one clip; it is what the whole video is about,
so a captioner that reads the video around a step can say it and one that sees the step alone
cannot.

This grammar is apart from the narration's (`narration.py`): the speech a model is pretrained on
never gives it the references' wording.
"""

from __future__ import annotations

import numpy as np

from vbert.data.synthcook.world import RECIPES, VERBS

# Per verb, phrasings an annotator might write: {np} a noun phrase ("the tomato", "tomatoes", ...),
# {n} the bare ingredient, {where} an optional place phrase (empty, or " in the pot" ...). At least
# four per verb.
PHRASINGS: dict[str, tuple[str, ...]] = {
    "cut": (
        "cut {np}{where}",
        "chop {np}{where}",
        "slice {np}{where}",
        "cut up {np}{where}",
        "dice {np}{where}",
        "chop up {np} into pieces{where}",
    ),
    "stir": (
        "stir {np}{where}",
        "mix {np}{where}",
        "give {np} a stir{where}",
        "stir {np} around{where}",
        "keep stirring {np}{where}",
    ),
    "pour": (
        "pour {np}{where}",
        "pour in {np}{where}",
        "add a splash of {n}{where}",
        "drizzle {np}{where}",
        "pour some {n} in{where}",
    ),
    "crack": (
        "crack {np}{where}",
        "break {np}{where}",
        "crack open {np}{where}",
        "crack an {n}{where}",
        "break an {n} open{where}",
    ),
    "peel": (
        "peel {np}{where}",
        "remove the skin of {np}{where}",
        "peel off the {n} skin{where}",
        "take the peel off {np}{where}",
        "skin {np}{where}",
    ),
    "flip": (
        "flip {np}{where}",
        "turn {np} over{where}",
        "flip over {np}{where}",
        "turn over {np}{where}",
        "flip {np} to the other side{where}",
    ),
    "roll": (
        "roll out {np}{where}",
        "roll {np} flat{where}",
        "flatten {np}{where}",
        "roll {np}{where}",
        "roll out {np} thin{where}",
    ),
    "fry": (
        "fry {np}{where}",
        "cook {np}{where}",
        "saute {np}{where}",
        "brown {np}{where}",
        "fry up {np}{where}",
    ),
    "boil": (
        "boil {np}{where}",
        "cook {np}{where}",
        "simmer {np}{where}",
        "put {np} in to boil{where}",
        "bring {np} to a boil{where}",
    ),
    "sprinkle": (
        "sprinkle {np}{where}",
        "season with {n}{where}",
        "add a pinch of {n}{where}",
        "sprinkle some {n}{where}",
        "dust {np}{where}",
    ),
    "mash": (
        "mash {np}{where}",
        "crush {np}{where}",
        "mash up {np}{where}",
        "smash {np}{where}",
        "mash {np} until smooth{where}",
    ),
    "whisk": (
        "whisk {np}{where}",
        "beat {np}{where}",
        "whisk together {np}{where}",
        "mix {np} well{where}",
        "beat {np} until smooth{where}",
    ),
    "grate": (
        "grate {np}{where}",
        "shred {np}{where}",
        "grate some {n}{where}",
        "finely grate {np}{where}",
        "shred up {np}{where}",
    ),
    "spread": (
        "spread {np}{where}",
        "spread some {n}{where}",
        "smear {np}{where}",
        "cover it with {n}{where}",
        "spread {np} out{where}",
    ),
    "add": (
        "add {np}{where}",
        "put in {np}{where}",
        "place {np}{where}",
        "add some {n}{where}",
        "throw in {np}{where}",
    ),
}
# Plural forms of the ingredients one can count (annotators name them either way).
PLURALS = {
    "tomato": "tomatoes",
    "egg": "eggs",
    "onion": "onions",
    "carrot": "carrots",
    "potato": "potatoes",
    "cucumber": "cucumbers",
    "mushroom": "mushrooms",
    "pancake": "pancakes",
    "banana": "bananas",
}
# Where each action happens, as the video draws it (the motion's board, pot, bowl or pan).
PLACES: dict[str, tuple[str, ...]] = {
    "cut": (" on the board", " on the cutting board"),
    "stir": (" in the pot", " in the saucepan"),
    "pour": (" into the bowl", " into the mixing bowl"),
    "crack": (" into a bowl", " into the bowl"),
    "peel": (" over the board",),
    "flip": (" in the pan", " in the skillet"),
    "roll": (" with a rolling pin", " on the counter"),
    "fry": (" in the pan", " in a hot pan"),
    "boil": (" in water", " in a pot of water"),
    "sprinkle": (" on top", " over it"),
    "mash": (" in a bowl", " with a masher"),
    "whisk": (" in a bowl", " with a whisk"),
    "grate": (" with a grater", " over the board"),
    "spread": (" on the bread", " evenly"),
    "add": (" to the bowl", " to the pan"),
}
# The dish a step is for, as annotators name it.
DISHES: dict[str, tuple[str, ...]] = {
    "scrambled eggs": ("scrambled eggs", "eggs"),
    "pancakes": ("pancakes", "pancake batter"),
    "mashed potatoes": ("mashed potatoes", "mash"),
    "tomato pasta": ("pasta", "tomato pasta"),
    "pan fried fish": ("fish dish", "fried fish"),
    "chicken soup": ("soup", "chicken soup"),
    "salad": ("salad",),
    "grilled cheese": ("sandwich", "grilled cheese"),
    "pizza": ("pizza",),
    "stir fry": ("stir fry",),
    "banana bread": ("banana bread", "loaf"),
    "french toast": ("french toast", "toast"),
    "noodle soup": ("noodle soup", "soup"),
    "hash browns": ("hash browns",),
}
PLACE_SHARE = 0.5  # an annotator says where the action happens half of the time
DISH_SHARE = 0.75  # and which dish it is for three times in four


def dish_names(recipe: str) -> tuple[str, ...]:
    """How annotators name the dish of a recipe (its own name when no other is listed)."""
    return DISHES.get(recipe, (recipe,))


def caption(verb: str, noun: str, recipe: str, rng: np.random.Generator) -> str:
    """One annotator's caption of a step: a phrasing of the verb, the ingredient, maybe where and for what."""
    phrasing = PHRASINGS[verb][int(rng.integers(len(PHRASINGS[verb])))]
    forms = [f"the {noun}", f"the {noun}", noun] + ([f"the {PLURALS[noun]}"] if noun in PLURALS else [])
    np_ = forms[int(rng.integers(len(forms)))]
    where = ""
    if rng.random() < PLACE_SHARE:
        places = PLACES[verb]
        where = places[int(rng.integers(len(places)))]
    text = phrasing.format(np=np_, n=noun, where=where)
    if rng.random() < DISH_SHARE:
        dishes = dish_names(recipe)
        text += f" for the {dishes[int(rng.integers(len(dishes)))]}"
    return text


def references(verb: str, noun: str, recipe: str, count: int, rng: np.random.Generator) -> list[str]:
    """`count` captions of one step by different annotators (distinct where the grammar allows)."""
    out: list[str] = []
    for _ in range(8 * count):
        text = caption(verb, noun, recipe, rng)
        if text not in out:
            out.append(text)
        if len(out) == count:
            break
    while len(out) < count:  # a verb with few phrasings: annotators may agree word for word
        out.append(caption(verb, noun, recipe, rng))
    return out


def check_grammar() -> None:
    """Every verb has four phrasings and a place, every recipe a dish name; a phrasing names the ingredient once."""
    missing = sorted(set(RECIPES) - set(DISHES))
    if missing:
        raise AssertionError(f"captions: no dish name for recipe(s) {', '.join(missing)}")
    for verb in VERBS:
        if len(PHRASINGS.get(verb, ())) < 4 or not PLACES.get(verb):
            raise AssertionError(f"captions: verb {verb!r} needs 4 phrasings and a place")
        for phrasing in PHRASINGS[verb]:
            if phrasing.count("{n}") + phrasing.count("{np}") != 1 or "{where}" not in phrasing:
                raise AssertionError(
                    f"captions: {phrasing!r} must name the ingredient once and hold {{where}}"
                )
