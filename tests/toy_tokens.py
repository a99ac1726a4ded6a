"""Toy token files for the pretraining tests: narrated videos whose visual words follow verb and noun."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

VERBS = ["cut", "stir", "pour", "fry", "wash", "peel"]
NOUNS = ["tomato", "egg", "onion", "rice", "carrot", "oil"]
K, DEPTH = 6, 2  # 36 visual words: word = verb * 6 + noun, as a stand-in for clustered S3D features


def write_tokens(
    path: Path, num_videos: int = 12, seed: int = 0, noise: float = 0.15, subset: str = "training"
) -> Path:
    """A small tokens.jsonl in the documented format, whose visual words depend on each step's verb and noun."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for v in range(num_videos):
            words, starts, sentences, t = [], [], [], 0.0
            for _ in range(int(rng.integers(4, 8))):
                verb, noun = int(rng.integers(6)), int(rng.integers(6))
                n = int(rng.integers(3, 7))
                clip = [verb * 6 + noun if rng.random() > noise else int(rng.integers(36)) for _ in range(n)]
                filler = ["so", "now", "okay", "and then"][int(rng.integers(4))]
                sentences.append(
                    {
                        "text": f"{filler} we {VERBS[verb]} the {NOUNS[noun]}",
                        "start": t,
                        "end": t + 1.5 * n,
                        "video_words": clip,
                    }
                )
                words += clip
                starts += [t + 1.5 * i for i in range(n)]
                t += 1.5 * n
            record = {
                "video_id": f"v{v:03d}",
                "subset": subset,
                "recipe_type": "salad",
                "words": words,
                "clip_starts": starts,
                "clip_ends": [s + 1.5 for s in starts],
                "sentences": sentences,
                "segments": [],
            }
            handle.write(json.dumps(record) + "\n")
    return path
