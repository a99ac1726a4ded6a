"""Insert the features part into notebooks/03_video_features.ipynb, leaving the other cells alone.

    python tools/build_03_features_part.py notebooks/03_video_features.ipynb
    jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.kernel_name=python3 \
        notebooks/03_video_features.ipynb

Re-running replaces the part: every cell from its first one (marked "<!-- features-part -->") up
to the graded section (cells tagged "graded", which ends the notebook) or the end.
"""

import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
MARK = "<!-- features-part -->"

def is_graded(cell) -> bool:
    """A cell of the graded section that ends the notebook (see tools/assignments.py)."""
    return "graded" in cell.get("metadata", {}).get("tags", [])


# Re-runnable: the part runs from its first cell (MARK) up to the graded section or the end.
start = next((i for i, c in enumerate(nb.cells) if MARK in c.source), None)
end = next((i for i, c in enumerate(nb.cells) if is_graded(c)), len(nb.cells))
if start is not None:
    del nb.cells[start:end]

cells = []
md = lambda s: cells.append(new_markdown_cell(s))
code = lambda s: cells.append(new_code_cell(s))

md(f"""{MARK}
# Part 2: from clips to vectors

VideoBERT never looks at pixels directly. Every 30-frame clip (1.5 s at 20 fps) is turned into
**one 1024-d vector**: the activations of S3D, pretrained on Kinetics, just before its
classifier, averaged over time and space. Later those vectors are clustered into visual words.

In this part we:

1. see why the unit is a *clip* and not a *frame*;
2. compare 2D, full 3D and separable ("S3D-style") convolutions;
3. load (or retrain) the course's own small S3D-style extractor, trained on SynthCook's
   labelled action clips the way S3D was trained on Kinetics;
4. look at the features (PCA coloured by verb and by noun) and measure how much they know with
   a linear probe, against random-weight S3D;
5. extract a whole dataset with `vbert extract` (what the next notebooks use).""")

code("""# features-part: setup (this part runs on its own too)
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch

import vbert
from vbert import course_s3d
from vbert.features import FEATURE_DIM, build_extractor, linear_probe
from vbert.synthcook import ensure_synthcook

vbert.seed_everything(0)
device = vbert.select_device()
preset = os.environ.get("VBERT_PRESET", "tiny")
config = vbert.load_config(preset)
size = config.video.crop_size
root = ensure_synthcook(config)
print("crop size", size, "| feature dimension", FEATURE_DIM)""")

md("""## Why clips and not frames

Many tutorials run an image network on each frame and average the vectors. That sees
*appearance* well (which ingredient is on screen) but it cannot see *motion*: averaging throws
the order of frames away, so "flip the pancake" and the same clip played backwards look
identical. SynthCook's verbs are told apart by motion, like real cooking verbs.

Below, the per-frame ResNet extractor gives the same vector for a clip and its time reversal,
while a 3D network (even with random weights) does not.""")

code("""# features-part
from vbert.course_s3d import load_labelled_clips

data = load_labelled_clips(root, size)
train_clips, train_verbs, train_nouns = data["train"]
val_clips, val_verbs, val_nouns = data["val"]
verbs, nouns = data["verbs"], data["nouns"]
print("train clips", train_clips.shape, "| validation clips", val_clips.shape)
print(len(verbs), "verbs,", len(nouns), "nouns")""")

code("""# features-part
clip = train_clips[:1]                   # [1, T, S, S, 3]
backwards = clip[:, ::-1].copy()         # the same frames, in reverse order
with warnings.catch_warnings():
    warnings.simplefilter("ignore")      # random weights: fine for this comparison
    per_frame = build_extractor("resnet", "none", device)
    three_d = build_extractor("course", "none", device)

def relative_change(extractor):
    a, b = extractor(clip), extractor(backwards)
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))

print(f"per-frame ResNet: {relative_change(per_frame):.4f}")
print(f"3D network:       {relative_change(three_d):.4f}")""")

md("""## 2D, 3D and separable convolutions

A 2D convolution mixes pixels within one frame. A full 3D convolution with a k x k x k kernel
mixes a small cube of space *and time*, at k times the cost. S3D (Xie et al., 2018) factorises it:
a 1 x k x k spatial convolution followed by a k x 1 x 1 temporal one. It is cheaper, and it
trained better on Kinetics than full 3D kernels. Count the parameters of one layer with 64
channels in and out:""")

code("""# features-part
# NBVAL_CHECK_OUTPUT
from torch import nn

c, k = 64, 3
layers = {
    "2D (per frame)": nn.Conv2d(c, c, k, padding=1, bias=False),
    "full 3D": nn.Conv3d(c, c, (k, k, k), padding=1, bias=False),
    "separable 3D": course_s3d.SeparableConv3d(c, c, k=k),
}
for name, layer in layers.items():
    weights = sum(p.numel() for p in layer.parameters() if p.dim() > 1)
    print(f"{name:<15} {weights:>8,d} weights")""")

code("""# features-part
# NBVAL_CHECK_OUTPUT
x = torch.randn(2, 64, 8, 16, 16)       # [N, C, T, H, W]
print("separable 3D:", tuple(course_s3d.SeparableConv3d(64, 128, stride=(2, 2, 2))(x).shape))
print("full 3D:     ", tuple(nn.Conv3d(64, 128, 3, stride=2, padding=1)(x).shape))""")

md("""## The course's extractor

`vbert.course_s3d.CourseS3D` stacks five separable layers (24 -> 48 -> 96 -> 96 -> 192 channels,
halving space four times and time twice), lifts to 1024 channels with a 1x1x1 convolution and
averages over time and space. Global pooling makes it **resolution-agnostic**: the same weights
run on the 64-pixel crops of `tiny`, the 96 of `small` and the 112 of `base`. Inputs are uint8 RGB,
divided by 255, then normalised with mean 0.45 and standard deviation 0.225.

It is trained like S3D on Kinetics, but on SynthCook's single-action clips: two linear heads
(verb and noun) on the pooled vector, cross-entropy on both; the heads are dropped afterwards.
The package ships a trained checkpoint (a few MB) together with the exact command that made it,
run on a SynthCook world generated with **another seed**, so this notebook's clips are unseen.""")

code("""# features-part
meta = course_s3d.checkpoint_metadata(course_s3d.default_checkpoint())
print("command:", meta["command"])
print("trained for", meta["settings"]["steps"], "steps on", meta["metrics"]["train_clips"], "clips")
for crop, acc in meta["metrics"]["val"].items():
    print(f"  its own validation clips, crop {crop}: verb {acc['verb_acc']:.2f}, noun {acc['noun_acc']:.2f}")""")

md("""Retraining runs `vbert train-extractor ...` with the command above. Set `VBERT_TRAIN_STEPS`
(e.g. 20) to watch a few steps from scratch here; then pass the file to `build_extractor("course", path)`.""")

code("""# features-part
import tempfile
from pathlib import Path

steps = int(os.environ.get("VBERT_TRAIN_STEPS", "0"))  # 0: use the committed checkpoint only
if steps:
    settings = course_s3d.TrainSettings(steps=steps, batch_size=8, sizes=(size,), log_every=max(1, steps // 5),
                                        warmup_steps=min(10, steps))
    scratch = Path(tempfile.mkdtemp()) / "course_s3d.safetensors"
    metrics = course_s3d.train_course_extractor(root, scratch, settings, show_progress=False)
    print("loss by step:", {h["step"]: round(h["loss"], 2) for h in metrics["history"]})
else:
    history = meta["metrics"]["history"]
    print("committed checkpoint, loss by step:", {h["step"]: round(h["loss"], 2) for h in history})""")

md("""## What the features know

We extract the trained features of every action clip and project them to two dimensions with
PCA. Colour by verb on the left, by noun on the right: clusters mean the vector encodes that label.""")

code("""# features-part
from sklearn.decomposition import PCA

course = build_extractor("course", "default", device)
train_x = course(train_clips)            # [N_train, 1024]
val_x = course(val_clips)                # [N_val, 1024]
points = PCA(n_components=2, random_state=0).fit_transform(np.concatenate([train_x, val_x]))
all_verbs = np.concatenate([train_verbs, val_verbs])
all_nouns = np.concatenate([train_nouns, val_nouns])

fig, axes = plt.subplots(1, 2, figsize=(12, 5))
for ax, labels, names, title in ((axes[0], all_verbs, verbs, "coloured by verb"),
                                 (axes[1], all_nouns, nouns, "coloured by noun")):
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab20", s=14)
    for i, name in enumerate(names):
        centre = points[labels == i].mean(axis=0)
        ax.annotate(name, centre, fontsize=8, ha="center")
    ax.set_title(f"course features, PCA, {title}")
plt.tight_layout()
plt.show()""")

md("""### Linear probes: trained vs random features

A linear probe is a logistic regression fitted on frozen features of the training clips and
scored on the validation clips. High accuracy means the label can be read off the vector
linearly, which is what k-means clustering later relies on. We compare the trained course
network with the same network untrained, and with torchvision's S3D with random weights
(what you get without the Kinetics download; it is slow on a CPU, so it sees fewer clips).""")

code("""# features-part
results = {}
results["course, trained"] = (linear_probe(train_x, train_verbs, val_x, val_verbs),
                              linear_probe(train_x, train_nouns, val_x, val_nouns))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    untrained = build_extractor("course", "none", device)
    random_s3d = build_extractor("s3d", "none", device)
ux, uv = untrained(train_clips), untrained(val_clips)
results["course, random"] = (linear_probe(ux, train_verbs, uv, val_verbs),
                             linear_probe(ux, train_nouns, uv, val_nouns))
rng = np.random.default_rng(0)
few_train = rng.permutation(len(train_clips))[:90]
few_val = rng.permutation(len(val_clips))[:45]
sx, sv = random_s3d(train_clips[few_train]), random_s3d(val_clips[few_val])
results["S3D, random"] = (linear_probe(sx, train_verbs[few_train], sv, val_verbs[few_val]),
                          linear_probe(sx, train_nouns[few_train], sv, val_nouns[few_val]))
for name, (verb_acc, noun_acc) in results.items():
    print(f"{name:<16} verb {verb_acc:.2f}   noun {noun_acc:.2f}")
print(f"chance: verb {1 / len(verbs):.2f}, noun {1 / len(nouns):.2f}")""")

code("""# features-part
fig, ax = plt.subplots(figsize=(7, 3.5))
names = list(results)
xs = np.arange(len(names))
ax.bar(xs - 0.2, [results[n][0] for n in names], 0.4, label="verb")
ax.bar(xs + 0.2, [results[n][1] for n in names], 0.4, label="noun")
ax.axhline(1 / len(verbs), color="grey", linestyle=":", label="verb chance")
ax.set_xticks(xs, names)
ax.set_ylabel("linear-probe accuracy")
ax.set_ylim(0, 1.05)
ax.legend()
plt.show()""")

md("""## Extracting a whole dataset

`vbert extract` (or `vbert.extract.ensure_features(config)` from Python) decodes every video into
clips in DataLoader workers, runs the extractor in batches and writes float16 shards with an
index of (video id, clip start, clip end). It resumes after an interruption, skips finished
videos, records unreadable ones in the manifest, and splits the videos across ranks under
`torchrun`. The result is cached, so the next notebooks reuse it.""")

code("""# features-part
from vbert.extract import ensure_features
from vbert.feature_store import FeatureStore
from vbert.manifest import read_manifest

folder = ensure_features(config)
store = FeatureStore(folder)
first = store.videos()[0]
vectors, starts, ends = store.clips_of(first)
print(len(store.videos()), "videos,", len(store), "clips, dimension", store.dim)
print("failures recorded:", len(read_manifest(folder)["failures"]))
print(f"video {first}: {len(vectors)} clips, first spans {starts[0]:.1f}-{ends[0]:.1f} s")""")

md("""## Exercises

**1. Implement it.** Write `separable_weights(c_in, c_out, k)`: the number of convolution weights
of one separable layer (spatial 1 x k x k from `c_in` to `c_out`, then temporal k x 1 x 1 from
`c_out` to `c_out`), without biases or normalisation. Compare with a full 3D layer, `c_in * c_out * k**3`.""")

code("""# features-part
def separable_weights(c_in, c_out, k):
    raise NotImplementedError  # your code here""")

code("""# features-part: solution
def separable_weights(c_in, c_out, k):
    return c_in * c_out * k * k + c_out * c_out * k""")

code("""# features-part: check
# NBVAL_CHECK_OUTPUT
layer = course_s3d.SeparableConv3d(24, 48, k=3)
assert separable_weights(24, 48, 3) == sum(p.numel() for p in layer.parameters() if p.dim() > 1)
assert separable_weights(64, 64, 3) < 64 * 64 * 27
print("ok")""")

md("""**2. Predict, then check.** The course features were trained on crops of 64, 96 and 112 pixels
(see the command above). Will a linear probe on features of *48-pixel* crops be much worse than on 64-pixel crops?
Write down your guess, then run `course_s3d.action_clip_probe(course, root, 48)` and compare with
`course_s3d.action_clip_probe(course, root, 64)`. What does global average pooling have to do with it?

**3. A small ablation.** Average the per-frame ResNet features (`build_extractor("resnet", "none")`)
and the untrained course features: which knows more about the *verb*, which about the *noun*?
Then rerun the training cell with `VBERT_TRAIN_STEPS=200` and probe the result: how many steps
does it take before the verb probe passes 90%?""")

at = next((i for i, c in enumerate(nb.cells) if is_graded(c)), len(nb.cells))
nb.cells[at:at] = cells
nbformat.write(nb, path)
print(f"inserted {len(cells)} cells into {path} at cell {at}")
