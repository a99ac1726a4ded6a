"""SynthCook: procedural cooking videos with narration and ground truth, for learning offline.

Ingredients (nouns) are distinct sprites, actions (verbs) distinct motions, recipes ordered
steps with optional steps; each video has an ASR-style narration and YouCook2-format
annotations, and a separate set of labelled single-action clips plays the role of Kinetics.
Modules: `world` (what exists), `plan` (what happens when), `sprites` + `motions` + `render`
(pixels), `narration` (speech), `generate` (files, the "generate" stage, CLI), `load` (reading back).
"""

from vbert.data.synthcook.generate import generate_synthcook
from vbert.data.synthcook.load import ActionClip, load_action_clips, load_synthcook
from vbert.data.synthcook.narration import narration_corpus
from vbert.data.synthcook.world import NOUNS, RECIPES, VERBS

__all__ = [
    "NOUNS",
    "RECIPES",
    "VERBS",
    "ActionClip",
    "generate_synthcook",
    "load_action_clips",
    "load_synthcook",
    "narration_corpus",
]
