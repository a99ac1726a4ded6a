"""The SynthCook world: verbs (motions), nouns (sprites), which verb fits which noun, and recipes.

Verbs are told apart by motion and nouns by appearance, so a video model can learn both;
recipes are ordered steps with optional steps and alternatives, so the next step is
predictable from the previous ones but not fixed. Everything here is plain data; drawing
lives in `render.py` and speech in `narration.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Verb:
    """An action: its canonical name and spoken synonyms as (base, -ing) forms (captions: `captions.py`)."""

    name: str
    synonyms: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Noun:
    """An ingredient: its canonical name, spoken synonyms, and how its sprite looks."""

    name: str
    synonyms: tuple[str, ...]
    shape: str  # see render.SHAPES
    colour: tuple[int, int, int]  # RGB body colour
    accent: tuple[int, int, int]  # RGB colour of its texture / details
    inner: tuple[int, int, int]  # RGB colour inside (shown when cut, cracked, peeled, mashed)


def _verb(name: str, synonyms: list[tuple[str, str]]) -> tuple[str, Verb]:
    return name, Verb(name, tuple(synonyms))


VERBS: dict[str, Verb] = dict(
    [
        _verb("cut", [("cut", "cutting"), ("chop", "chopping"), ("slice", "slicing"), ("dice", "dicing")]),
        _verb("stir", [("stir", "stirring"), ("mix", "mixing")]),
        _verb("pour", [("pour", "pouring"), ("drizzle", "drizzling")]),
        _verb("crack", [("crack", "cracking"), ("break", "breaking")]),
        _verb("peel", [("peel", "peeling"), ("skin", "skinning")]),
        _verb("flip", [("flip", "flipping"), ("turn", "turning")]),
        _verb("roll", [("roll", "rolling"), ("flatten", "flattening")]),
        _verb("fry", [("fry", "frying"), ("saute", "sauteing"), ("sear", "searing")]),
        _verb("boil", [("boil", "boiling"), ("simmer", "simmering")]),
        _verb("sprinkle", [("sprinkle", "sprinkling"), ("dust", "dusting")]),
        _verb("mash", [("mash", "mashing"), ("smash", "smashing"), ("crush", "crushing")]),
        _verb("whisk", [("whisk", "whisking"), ("beat", "beating")]),
        _verb("grate", [("grate", "grating"), ("shred", "shredding")]),
        _verb("spread", [("spread", "spreading"), ("smear", "smearing")]),
        _verb("add", [("add", "adding"), ("drop", "dropping"), ("toss", "tossing")]),
    ]
)


def _noun(name, synonyms, shape, colour, accent, inner) -> tuple[str, Noun]:
    return name, Noun(name, tuple(synonyms), shape, colour, accent, inner)


NOUNS: dict[str, Noun] = dict(
    [
        _noun("tomato", ["tomato", "tomatoes"], "round_stem", (215, 35, 30), (40, 150, 40), (240, 110, 90)),
        _noun("egg", ["egg", "eggs"], "oval", (245, 238, 220), (225, 215, 190), (250, 200, 30)),
        _noun("onion", ["onion", "onions"], "rings", (140, 55, 125), (200, 140, 190), (235, 215, 230)),
        _noun("carrot", ["carrot", "carrots"], "long_leaf", (245, 125, 20), (50, 160, 50), (255, 165, 70)),
        _noun(
            "potato",
            ["potato", "potatoes", "spuds"],
            "spotted",
            (165, 115, 60),
            (95, 60, 30),
            (240, 225, 160),
        ),
        _noun(
            "cheese", ["cheese", "cheddar"], "wedge_holes", (250, 205, 40), (205, 150, 10), (255, 225, 110)
        ),
        _noun("bread", ["bread", "loaf", "toast"], "loaf", (215, 165, 95), (130, 75, 30), (245, 225, 180)),
        _noun("dough", ["dough", "pastry"], "blob", (238, 220, 185), (215, 195, 160), (245, 235, 210)),
        _noun("butter", ["butter"], "block_band", (250, 235, 135), (60, 110, 210), (255, 245, 170)),
        _noun("milk", ["milk", "cream"], "carton", (250, 250, 250), (30, 90, 210), (250, 250, 245)),
        _noun("oil", ["oil", "olive oil"], "bottle", (185, 175, 35), (60, 90, 30), (215, 205, 70)),
        _noun("salt", ["salt", "sea salt"], "shaker_dots", (235, 240, 250), (120, 130, 150), (250, 250, 255)),
        _noun(
            "pepper", ["pepper", "black pepper"], "shaker_dark", (50, 45, 45), (150, 150, 150), (35, 30, 30)
        ),
        _noun("broccoli", ["broccoli", "florets"], "florets", (35, 120, 45), (150, 200, 90), (120, 180, 90)),
        _noun(
            "cucumber",
            ["cucumber", "cucumbers"],
            "long_stripes",
            (40, 140, 70),
            (150, 210, 120),
            (200, 235, 170),
        ),
        _noun(
            "chicken",
            ["chicken", "chicken breast"],
            "drumstick",
            (245, 175, 165),
            (250, 240, 230),
            (250, 215, 205),
        ),
        _noun("fish", ["fish", "salmon", "fillet"], "fish", (110, 145, 195), (60, 80, 120), (250, 140, 100)),
        _noun(
            "noodles",
            ["noodles", "pasta", "spaghetti"],
            "wavy",
            (245, 225, 120),
            (200, 160, 60),
            (250, 235, 150),
        ),
        _noun(
            "mushroom", ["mushroom", "mushrooms"], "cap_stem", (125, 85, 70), (235, 225, 205), (230, 215, 190)
        ),
        _noun(
            "pancake", ["pancake", "pancakes"], "disk_ring", (225, 165, 70), (175, 105, 35), (245, 210, 140)
        ),
        _noun("banana", ["banana", "bananas"], "crescent", (255, 230, 40), (110, 85, 30), (250, 245, 200)),
        _noun("sauce", ["sauce", "gravy"], "jar", (150, 30, 35), (240, 200, 60), (170, 45, 40)),
    ]
)

# Which nouns each verb is done to, as in a kitchen (you crack eggs, you do not crack milk).
FITS: dict[str, tuple[str, ...]] = {
    "cut": (
        "tomato",
        "onion",
        "carrot",
        "potato",
        "cheese",
        "bread",
        "broccoli",
        "cucumber",
        "chicken",
        "fish",
        "mushroom",
        "banana",
    ),
    "stir": ("noodles", "mushroom", "onion", "tomato", "broccoli", "sauce", "chicken"),
    "pour": ("milk", "oil", "sauce"),
    "crack": ("egg",),
    "peel": ("potato", "carrot", "onion", "cucumber", "banana"),
    "flip": ("pancake", "egg", "fish", "bread", "chicken", "potato"),
    "roll": ("dough",),
    "fry": ("egg", "onion", "chicken", "fish", "mushroom", "potato", "bread", "pancake", "tomato"),
    "boil": ("egg", "potato", "noodles", "broccoli", "carrot", "chicken"),
    "sprinkle": ("salt", "pepper", "cheese"),
    "mash": ("potato", "banana", "carrot"),
    "whisk": ("egg", "milk", "butter"),
    "grate": ("cheese", "carrot", "potato", "cucumber"),
    "spread": ("butter", "sauce"),
    "add": tuple(NOUNS),
}


@dataclass(frozen=True)
class RecipeStep:
    """One slot of a recipe: (verb, noun) choices and the chance the step is done at all."""

    choices: tuple[tuple[str, str], ...]
    keep: float = 1.0  # 1.0 = always done; below 1.0 = an optional step


@dataclass(frozen=True)
class Recipe:
    """A dish: its ordered steps (optional steps and alternatives make each video differ)."""

    name: str
    steps: tuple[RecipeStep, ...] = field(default_factory=tuple)


def _s(*choices: str, keep: float = 1.0) -> RecipeStep:
    pairs = tuple(tuple(c.split()) for c in choices)
    return RecipeStep(pairs, keep)  # type: ignore[arg-type]


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            "scrambled eggs",
            (
                _s("crack egg"),
                _s("whisk egg"),
                _s("sprinkle salt", keep=0.6),
                _s("add butter", "pour oil"),
                _s("fry egg"),
                _s("sprinkle pepper", keep=0.5),
            ),
        ),
        Recipe(
            "pancakes",
            (
                _s("crack egg"),
                _s("pour milk"),
                _s("whisk egg", "whisk milk"),
                _s("fry pancake"),
                _s("flip pancake"),
                _s("spread butter", "pour sauce", keep=0.5),
            ),
        ),
        Recipe(
            "mashed potatoes",
            (
                _s("peel potato"),
                _s("cut potato"),
                _s("boil potato"),
                _s("mash potato"),
                _s("add butter", keep=0.7),
                _s("pour milk", keep=0.5),
                _s("sprinkle salt", keep=0.5),
            ),
        ),
        Recipe(
            "tomato pasta",
            (
                _s("boil noodles"),
                _s("cut tomato"),
                _s("cut onion", keep=0.6),
                _s("fry onion", "fry tomato", keep=0.6),
                _s("pour sauce"),
                _s("stir noodles"),
                _s("grate cheese", "sprinkle cheese", keep=0.7),
            ),
        ),
        Recipe(
            "pan fried fish",
            (
                _s("cut fish", keep=0.5),
                _s("sprinkle salt"),
                _s("sprinkle pepper", keep=0.6),
                _s("pour oil"),
                _s("fry fish"),
                _s("flip fish"),
                _s("cut tomato", "cut cucumber", keep=0.4),
            ),
        ),
        Recipe(
            "chicken soup",
            (
                _s("peel carrot", keep=0.5),
                _s("cut carrot"),
                _s("cut onion", keep=0.6),
                _s("cut chicken"),
                _s("boil chicken"),
                _s("add carrot", "add onion"),
                _s("add noodles", keep=0.4),
                _s("stir chicken"),
            ),
        ),
        Recipe(
            "salad",
            (
                _s("cut cucumber", "peel cucumber"),
                _s("cut tomato"),
                _s("grate carrot", "cut onion", keep=0.7),
                _s("add cheese", keep=0.5),
                _s("pour oil"),
                _s("sprinkle salt", "sprinkle pepper"),
            ),
        ),
        Recipe(
            "grilled cheese",
            (
                _s("cut bread", keep=0.5),
                _s("spread butter"),
                _s("grate cheese", "cut cheese"),
                _s("add cheese"),
                _s("fry bread"),
                _s("flip bread"),
                _s("cut bread", keep=0.6),
            ),
        ),
        Recipe(
            "pizza",
            (
                _s("roll dough"),
                _s("spread sauce"),
                _s("cut mushroom", "cut tomato", keep=0.7),
                _s("grate cheese", "sprinkle cheese"),
                _s("add mushroom", "add tomato"),
                _s("sprinkle pepper", keep=0.4),
            ),
        ),
        Recipe(
            "stir fry",
            (
                _s("cut chicken"),
                _s("cut broccoli"),
                _s("cut mushroom", keep=0.5),
                _s("pour oil"),
                _s("fry chicken"),
                _s("add broccoli"),
                _s("pour sauce"),
                _s("stir chicken", "stir broccoli"),
            ),
        ),
        Recipe(
            "banana bread",
            (
                _s("peel banana"),
                _s("mash banana"),
                _s("crack egg"),
                _s("whisk egg", "whisk butter"),
                _s("add butter", keep=0.5),
                _s("stir sauce", "roll dough", keep=0.3),
            ),
        ),
        Recipe(
            "french toast",
            (
                _s("crack egg"),
                _s("pour milk", keep=0.7),
                _s("whisk egg"),
                _s("cut bread", keep=0.5),
                _s("fry bread"),
                _s("flip bread"),
                _s("sprinkle salt", "spread butter", keep=0.5),
            ),
        ),
        Recipe(
            "noodle soup",
            (
                _s("boil noodles"),
                _s("cut mushroom"),
                _s("cut broccoli", keep=0.6),
                _s("add mushroom", "add broccoli"),
                _s("pour sauce"),
                _s("stir noodles"),
            ),
        ),
        Recipe(
            "hash browns",
            (
                _s("peel potato"),
                _s("grate potato"),
                _s("sprinkle salt"),
                _s("pour oil", keep=0.6),
                _s("fry potato"),
                _s("flip potato"),
                _s("sprinkle pepper", keep=0.4),
            ),
        ),
    ]
}


def check_world() -> None:
    """Raise ValueError if the world is inconsistent (a recipe uses a pair that does not fit)."""
    for recipe in RECIPES.values():
        mandatory = sum(1 for s in recipe.steps if s.keep >= 1.0)
        if not (4 <= len(recipe.steps) <= 8) or mandatory < 3:
            raise ValueError(f"recipe {recipe.name!r} has {len(recipe.steps)} steps ({mandatory} mandatory)")
        for step in recipe.steps:
            for verb, noun in step.choices:
                if noun not in FITS[verb]:
                    raise ValueError(f"recipe {recipe.name!r}: {verb} {noun} is not in FITS")
    for verb, nouns in FITS.items():
        if verb not in VERBS or any(n not in NOUNS for n in nouns):
            raise ValueError(f"FITS[{verb!r}] names an unknown verb or noun")


def world_dict() -> dict:
    """The world as JSON-ready data (written to world.json next to the videos)."""
    return {
        "verbs": {v.name: {"synonyms": [s[0] for s in v.synonyms]} for v in VERBS.values()},
        "nouns": {
            n.name: {"synonyms": list(n.synonyms), "shape": n.shape, "colour": list(n.colour)}
            for n in NOUNS.values()
        },
        "fits": {verb: list(nouns) for verb, nouns in FITS.items()},
        "recipes": {
            r.name: [{"choices": [list(c) for c in s.choices], "keep": s.keep} for s in r.steps]
            for r in RECIPES.values()
        },
    }
