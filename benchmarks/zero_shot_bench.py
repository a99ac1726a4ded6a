"""Table 1 (zero-shot verb/noun classification) for a preset, and whether it clears the course's bar.

    VBERT_CACHE=runs/cache python benchmarks/zero_shot_bench.py --preset tiny
    VBERT_CACHE=runs/cache python benchmarks/zero_shot_bench.py --preset base --device cuda

Builds (or reuses from the cache) everything the preset needs, as notebook 06 does: SynthCook,
clip features, visual words, tokens, the pretrained VideoBERT and the text-only BERT. Prints the
table, each row's top-1 as a multiple of chance, the bar (cross-modal top-1 at least 3x chance for
verbs and for nouns and above both language-prior rows), how much the video moves the label scores,
and the wall time of each part; `--out` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def video_effect(config, device: str) -> dict[str, float]:
    """Mean absolute change of the label log-probabilities when the segment's visual words are added."""
    import numpy as np

    from vbert.pretraining.saved import load_pretrained
    from vbert.tasks.artifacts import Artifacts
    from vbert.tasks.data import load_segments, with_labels
    from vbert.tasks.zero_shot import encode_labels, zero_shot_scores

    tokens = Artifacts(config).tokens()
    _, val, verbs, nouns = with_labels(
        load_segments(tokens, ("training",)), load_segments(tokens, ("validation",))
    )
    model, vocab, tokenizer = load_pretrained(Artifacts(config).pretrained(), device)
    verb_set, noun_set = encode_labels(verbs, tokenizer, "verb"), encode_labels(nouns, tokenizer, "noun")
    template, max_len = config.eval.zero_shot_template, config.pretrain.max_seq_len
    with_video = zero_shot_scores(
        model.mlm,
        tokenizer,
        vocab,
        template,
        [s.video_words for s in val],
        verb_set,
        noun_set,
        max_len=max_len,
    )
    without = zero_shot_scores(
        model.mlm, tokenizer, vocab, template, [None] * len(val), verb_set, noun_set, max_len=max_len
    )
    return {
        "verb": float(np.abs(with_video.verb_scores - without.verb_scores).mean()),
        "noun": float(np.abs(with_video.noun_scores - without.noun_scores).mean()),
    }


def main() -> None:
    """Measure Table 1 for one preset and check the bar."""
    from vbert.config import load_config
    from vbert.core.device import select_device
    from vbert.core.stages import resolve
    from vbert.pretraining.stage import STAGE as PRETRAIN
    from vbert.tasks.action_table import format_table, table1
    from vbert.tasks.artifacts import text_only_config
    from vbert.visual_words.tokenize import STAGE as TOKENIZE

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: CUDA when present)")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()

    config = load_config(args.preset, args.set)
    device = str(select_device(args.device))
    times = {}
    start = time.perf_counter()
    resolve(TOKENIZE, config)
    times["data, features, visual words, tokens"] = time.perf_counter() - start
    start = time.perf_counter()
    resolve(PRETRAIN, config)
    times["VideoBERT pretraining"] = time.perf_counter() - start
    start = time.perf_counter()
    resolve(PRETRAIN, text_only_config(config))
    times["text-only BERT pretraining"] = time.perf_counter() - start
    start = time.perf_counter()
    result = table1(config, device)
    times["Table 1 evaluation"] = time.perf_counter() - start
    rows = result["rows"]
    print(
        f"preset {args.preset} {' '.join(args.set)} | device {device} | {result['num_segments']} validation segments"
    )
    print(format_table(rows))
    chance, cross = rows["chance"], rows["VideoBERT, cross-modal"]
    priors = [rows["text-only BERT, language prior"], rows["VideoBERT, language prior"]]
    checks = {}
    for kind in ("verb", "noun"):
        key = f"{kind} top-1"
        ratio = cross[key] / chance[key]
        checks[kind] = ratio >= 3.0 and all(cross[key] > p[key] for p in priors)
        print(
            f"{kind}: cross-modal top-1 {cross[key]:.1f}% = {ratio:.1f}x chance; language priors "
            f"{priors[0][key]:.1f}% / {priors[1][key]:.1f}% -> bar {'met' if checks[kind] else 'NOT met'}"
        )
    effect = video_effect(config, device)
    print(
        f"mean |change of label log-probability| when the video is added: verb {effect['verb']:.3f}, "
        f"noun {effect['noun']:.3f}"
    )
    for part, seconds in times.items():
        print(f"{part}: {seconds:.1f} s" + ("" if part == "Table 1 evaluation" else " (about 0 when cached)"))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {
                    "preset": args.preset,
                    "overrides": args.set,
                    "device": device,
                    "rows": rows,
                    "bar_met": checks,
                    "video_effect": effect,
                    "seconds": times,
                },
                indent=1,
            ),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
