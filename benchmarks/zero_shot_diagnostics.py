"""Why is zero-shot classification where it is? What the data allows, before any model is trained.

    VBERT_CACHE=runs/cache python benchmarks/zero_shot_diagnostics.py --preset tiny
    VBERT_CACHE=runs/cache python benchmarks/zero_shot_diagnostics.py --preset tiny --set vocab.k=12

Three measurements on the preset's token file (built or reused from the cache), none of which
trains a VideoBERT:

1. Do the visual words name the action? Purity of the words against the verb and noun labels
   (and with the words shuffled), and a supervised bag-of-visual-words probe (training segments ->
   validation segments): the most any model reading only the words could get.
2. Does the narration name the labels? Share of narrated training sentences whose text contains
   the verb (noun) label of the ground-truth segment they overlap most.
3. What co-occurrence alone allows: from the narrated training sentences only (no labels), count
   how often each label word is said while each visual word is on screen, and classify each
   validation segment by the label with the highest summed log P(label | word). A pretrained model
   that reads the video should get near this; one that does not stays at its language prior.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np


def bow(segments: Sequence, size: int) -> np.ndarray:
    """Normalised bag of visual words of each segment: [N, size]."""
    x = np.zeros((len(segments), size))
    for i, s in enumerate(segments):
        for w in s.video_words:
            x[i, w] += 1
    return x / np.maximum(x.sum(1, keepdims=True), 1)


def cooccurrence_accuracy(
    records: list[dict], val: Sequence, names: list[str], kind: str, size: int
) -> float:
    """Top-1 of argmax_label sum_w log P(label said | word w on screen), counted on training sentences."""
    counts = np.full((size, len(names)), 0.1)  # [K, labels], add-0.1 smoothing
    index = {n: i for i, n in enumerate(names)}
    for record in records:
        if record.get("subset", "training") != "training":
            continue
        for sentence in record["sentences"]:
            said = [index[w] for w in sentence["text"].split() if w in index]
            for w in sentence["video_words"]:
                for i in said:
                    counts[w, i] += 1
    log_p = np.log(counts / counts.sum(1, keepdims=True))  # [K, labels]
    hits = [int(np.argmax(log_p[s.video_words].sum(0)) == index[getattr(s, kind)]) for s in val]
    return float(np.mean(hits))


def narration_names_labels(records: list[dict]) -> tuple[int, float, float]:
    """(narrated training sentences, share naming the overlapping segment's verb, share naming its noun)."""
    total = verb = noun = 0
    for record in records:
        if record.get("subset", "training") != "training":
            continue
        for sentence in record["sentences"]:
            if not sentence["text"]:
                continue
            total += 1
            best, overlap = None, 0.0
            for segment in record.get("segments", []):
                o = min(segment["end"], sentence["end"]) - max(segment["start"], sentence["start"])
                if o > overlap:
                    best, overlap = segment, o
            words = sentence["text"].split()
            if best is not None:
                verb += best["verb"] in words
                noun += best["noun"] in words
    return total, verb / max(total, 1), noun / max(total, 1)


def main() -> None:
    """Print the three measurements for one preset."""
    from sklearn.linear_model import LogisticRegression

    from vbert.config import load_config
    from vbert.core.stages import resolve
    from vbert.tasks.data import load_segments, with_labels
    from vbert.visual_words.figures import chance_purity, cluster_purity
    from vbert.visual_words.token_file import read_token_file
    from vbert.visual_words.tokenize import STAGE as TOKENIZE

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()

    config = load_config(args.preset, args.set)
    size = config.vocab.k**config.vocab.depth
    tokens = resolve(TOKENIZE, config)
    records = read_token_file(tokens)
    train, val, verbs, nouns = with_labels(
        load_segments(tokens, ("training",)), load_segments(tokens, ("validation",))
    )
    print(
        f"preset {args.preset} {' '.join(args.set)}: {size} visual words, {len(train)} training and "
        f"{len(val)} validation segments, {np.mean([len(s.video_words) for s in train + val]):.1f} words each"
    )
    sentences, said_verb, said_noun = narration_names_labels(records)
    print(
        f"narration: {sentences} narrated training sentences; the text names the verb of the segment it "
        f"overlaps in {100 * said_verb:.0f}%, its noun in {100 * said_noun:.0f}%"
    )
    for kind, names in (("verb", verbs), ("noun", nouns)):
        words = np.array([w for s in train + val for w in s.video_words])
        labels = [getattr(s, kind) for s in train + val for _ in s.video_words]
        probe = LogisticRegression(C=10, max_iter=3000).fit(
            bow(train, size), [getattr(s, kind) for s in train]
        )
        probe_acc = float(np.mean(probe.predict(bow(val, size)) == np.array([getattr(s, kind) for s in val])))
        cooc = cooccurrence_accuracy(records, val, names, kind, size)
        print(
            f"{kind}: purity {cluster_purity(words, labels):.3f} (shuffled {chance_purity(words, labels):.3f}); "
            f"supervised word probe top-1 {100 * probe_acc:.1f}%; co-occurrence zero-shot top-1 "
            f"{100 * cooc:.1f}%; chance {100 / len(names):.1f}%"
        )


if __name__ == "__main__":
    main()
