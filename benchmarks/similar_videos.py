"""Videos like this one, measured: precision@k of same-recipe videos for each video embedding.

    vbert run --preset tiny --out runs/demo
    python benchmarks/similar_videos.py --run runs/demo

Recipe type is the ground truth (SynthCook's recipes; no model saw them). For each query video, the
other videos of the run's dataset (training and validation) are ranked by cosine similarity of
(a) the VideoBERT video embedding (`vbert.describe.similar`: encoder outputs at the video tokens,
averaged), (b) the mean clip feature, (c) a random order (100 seeds: mean and standard deviation);
precision@k is the share of the k nearest that are the query's recipe; a last column gives the
pooled [CLS] output (`vbert.tasks.embeddings.pooled_video`) for comparison. Rows: the validation videos
as queries, then every video; whole videos, then glimpses (a query is only its first n clips, 1.5 s
each, against whole candidates). Last, a watch history: 3 videos of one recipe drawn at random (100
draws), the others ranked by `vbert.describe.recommend`'s rule (mean of the unit embeddings).
Then notebook 08's measure, the validation videos ranked among themselves only (precision@3), with
the best any embedding can score there: most recipes have a single validation video.
"""

from __future__ import annotations

import argparse

import numpy as np

from vbert.describe import open_run, same_recipe_precision
from vbert.describe.similar import dataset_videos, rank, unit_rows
from vbert.tasks.classification import nearest_neighbours, precision_at_k
from vbert.tasks.embeddings import pooled_video


def _cell(row: dict[str, float]) -> str:
    return f"{row['mean']:.1f} ± {row['std']:.1f}" if row["std"] else f"{row['mean']:.1f}"


def history_precision(run, k: int, size: int, draws: int) -> dict[str, dict[str, float]]:
    """Precision@k of same-recipe videos ranked for a history of `size` videos of one recipe."""
    data = dataset_videos(run)
    out = {}
    for name in ("VideoBERT", "mean clip features", "random"):
        scores = []
        for seed in range(draws):
            rng = np.random.default_rng(seed)
            recipe = rng.choice(sorted(set(data.recipes)))
            history = rng.choice(np.flatnonzero(data.recipes == recipe), size, replace=False)
            if name == "random":
                embeddings = unit_rows(rng.standard_normal((len(data.ids), 16)))
            else:
                embeddings = data.videobert if name == "VideoBERT" else data.clips
            order, _ = rank(embeddings[history].mean(0), embeddings, history)
            scores.append(100.0 * float((data.recipes[order[:k]] == recipe).mean()))
        out[name] = {"mean": float(np.mean(scores)), "std": float(np.std(scores))}
    return out


def pooled_precision(run, subsets, glimpse: int | None, k: int) -> float:
    """The same precision@k for the pooled [CLS] output (`pooled_video`, notebook 08's embedding)."""
    data = dataset_videos(run)
    max_len = run.config.pretrain.max_seq_len
    candidates = unit_rows(pooled_video(run.model, run.vocab, data.words, max_len))
    rows = np.flatnonzero(np.isin(data.subsets, list(subsets))) if subsets else np.arange(len(data.ids))
    queries = pooled_video(run.model, run.vocab, [data.words[i][:glimpse] for i in rows], max_len)
    hits = []
    for query, row in zip(queries, rows):
        order, _ = rank(query, candidates, [row])
        hits.append((data.recipes[order[:k]] == data.recipes[row]).mean())
    return 100.0 * float(np.mean(hits))


def main() -> None:
    """Print the tables of docs/benchmarks.md ("Videos like this one")."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/demo", help="a finished `vbert run` folder")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=100, help="random orders (and history draws)")
    args = parser.parse_args()
    run = open_run(args.run)
    data = dataset_videos(run)
    print(
        f"{len(data.ids)} videos, {len(set(data.recipes))} recipes, {int((data.subsets == 'validation').sum())} validation"
    )
    print(
        f"\n| queries | query | VideoBERT | mean clip features | random ({args.seeds} seeds) | pooled [CLS] |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for subsets, label in ((("validation",), "validation"), (None, "every video")):
        for glimpse in (None, 1, 2, 4, 8):
            table = same_recipe_precision(run, args.k, subsets, glimpse, args.seeds)
            what = "whole video" if glimpse is None else f"first {glimpse} clip{'s' if glimpse > 1 else ''}"
            cells = " | ".join(_cell(table["rows"][m]) for m in ("VideoBERT", "mean clip features", "random"))
            pooled = pooled_precision(run, subsets, glimpse, args.k)
            print(f"| {label} ({table['queries']}) | {what} | {cells} | {pooled:.1f} |")
    history = history_precision(run, args.k, 3, args.seeds)
    cells = " | ".join(_cell(history[m]) for m in ("VideoBERT", "mean clip features", "random"))
    print(f"| watch history of 3 videos of one recipe ({args.seeds} draws) | whole videos | {cells} | |")
    val = np.flatnonzero(data.subsets == "validation")
    recipes = data.recipes[val]
    pooled = pooled_video(run.model, run.vocab, [data.words[i] for i in val], run.config.pretrain.max_seq_len)
    ceiling = 100.0 * np.mean([min(3, int((recipes == r).sum()) - 1) / 3 for r in recipes])
    among = {
        "VideoBERT": data.videobert[val],
        "pooled [CLS] (notebook 08)": pooled,
        "mean clip features": data.clips[val],
    }
    print(f"\nValidation videos among themselves ({len(val)}), precision@3; the best possible: {ceiling:.1f}")
    for name, x in among.items():
        print(f"- {name}: {precision_at_k(nearest_neighbours(x, k=3), list(recipes)):.1f}")


if __name__ == "__main__":
    main()
