"""How separable are SynthCook's action clips by simple, hand-made features? (a data sanity check)

    python benchmarks/synthcook_separability.py --preset tiny --set data.action_clips_per_class=40

Each clip (20 fps, 30 frames, resized to 64) becomes a vector of motion features (mean absolute
frame difference in an 8x8 grid, and the low-frequency spectrum of that signal over time, which
captures periodic motion) plus appearance features (colour histograms and an 8x8 grid of mean
colours). A logistic-regression probe is fit on the training clips and scored on the validation
clips, for verbs and for nouns. Verbs are meant to be told by motion, nouns by appearance; a
learned network should beat these numbers, above all for nouns, whose sprites these global
colour statistics cannot localise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from vbert.config import load_config
from vbert.data.synthcook import generate_synthcook, load_action_clips
from vbert.data.video import read_clips


def clip_features(frames: np.ndarray) -> np.ndarray:
    """Hand-made motion + appearance features of one clip uint8 [T, 64, 64, 3] -> float [D]."""
    f = frames.astype(np.float32)
    diff = np.abs(np.diff(f, axis=0)).mean(-1)  # [T-1, 64, 64]
    cells = diff.reshape(len(diff), 8, 8, 8, 8).mean((2, 4)).reshape(len(diff), 64)  # [T-1, 64]
    spectrum = np.abs(np.fft.rfft(cells - cells.mean(0), axis=0))[:8].reshape(-1)  # [8 * 64]
    hist = (
        np.concatenate([np.histogram(f[..., k], bins=16, range=(0, 255))[0] for k in range(3)])
        / f[..., 0].size
    )
    grid = f.mean(0).reshape(8, 8, 8, 8, 3).mean((1, 3)).reshape(-1) / 255  # [8 * 8 * 3]
    return np.concatenate([cells.mean(0), spectrum, 10 * hist, grid])


def probe(x: np.ndarray, labels: list[str], train: np.ndarray) -> float:
    """Validation accuracy of a logistic-regression probe fit on the training rows."""
    y = np.asarray(labels)
    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(max_iter=3000).fit(scaler.transform(x[train]), y[train])
    return float((model.predict(scaler.transform(x[~train])) == y[~train]).mean())


def main() -> None:
    """Generate the preset's action clips (videos skipped), featurise, probe, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    config = load_config(args.preset, ["data.num_train_videos=0", "data.num_val_videos=1", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_synthcook(Path(tmp) / "sc", config, show_progress=False)
        clips = load_action_clips(root)
        x = np.stack([clip_features(read_clips(c.path, 20.0, 30, 64).frames[0]) for c in clips])
    train = np.array([c.subset == "training" for c in clips])
    print(
        json.dumps(
            {
                "preset": args.preset,
                "train_clips": int(train.sum()),
                "val_clips": int((~train).sum()),
                "verbs": len({c.verb for c in clips}),
                "nouns": len({c.noun for c in clips}),
                "verb_probe_acc": round(probe(x, [c.verb for c in clips], train), 3),
                "noun_probe_acc": round(probe(x, [c.noun for c in clips], train), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
