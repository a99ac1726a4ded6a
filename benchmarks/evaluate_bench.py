"""Where the time of the pipeline's "evaluate" stage goes, part by part, on a finished run folder.

    vbert run --preset tiny --out runs/demo --only generate extract vocab tokenize pretrain
    python benchmarks/evaluate_bench.py --run runs/demo --preset tiny --device cpu
    python benchmarks/evaluate_bench.py --run runs/base --preset base --device cuda

Times (wall clock and this process's CPU seconds) the parts the evaluate stage runs: the
text-only BERT of Table 1 (trained into a temporary folder), the zero-shot rows, the supervised
probe, the captioning features, each captioner (training, decoding, scoring) and retrieval. The
CPU seconds are the honest number on a shared machine: wall time there depends on the neighbours.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def timed(rows: list[tuple[str, float, float]], name: str):
    """Append (name, wall seconds, CPU seconds) of the block to rows and print it."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    rows.append((name, time.perf_counter() - wall, time.process_time() - cpu))
    print(f"{name:<44} {rows[-1][1]:8.1f} s wall {rows[-1][2]:8.1f} s CPU", flush=True)


def main() -> None:
    """Time each part of the evaluate stage and print a Markdown table."""
    import numpy as np
    import torch

    from vbert.config import load_config
    from vbert.features.store import FeatureStore
    from vbert.pretraining.saved import load_pretrained
    from vbert.pretraining.stage import run_pretraining
    from vbert.tasks.action_table import probe_row, zero_shot_row
    from vbert.tasks.artifacts import text_only_config
    from vbert.tasks.caption_table import INPUTS, caption_inputs, score_rows, train_and_decode
    from vbert.tasks.data import load_segments, load_videos, segment_features, with_labels
    from vbert.tasks.embeddings import caption_features
    from vbert.tasks.retrieval import retrieval_scores

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", default="runs/demo", help="a run folder finished up to the pretrain stage")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-text-only", action="store_true", help="do not time the text-only BERT")
    args = parser.parse_args()

    config = load_config(args.preset, args.overrides)
    run = Path(args.run)
    device = args.device
    print(f"torch threads {torch.get_num_threads()}, load average at start {os.getloadavg()}", flush=True)
    rows: list[tuple[str, float, float]] = []
    tokens = run / "tokenize"
    train_seg, val_seg = load_segments(tokens, ("training",)), load_segments(tokens, ("validation",))
    train, val, verbs, nouns = with_labels(train_seg, val_seg)
    template, ks, max_len = config.eval.zero_shot_template, config.eval.top_k, config.pretrain.max_seq_len

    if not args.skip_text_only:
        with tempfile.TemporaryDirectory() as tmp, timed(rows, "text-only BERT pretraining"):
            run_pretraining(text_only_config(config), tokens, Path(tmp) / "text-only", device=device)
    with timed(rows, "load VideoBERT"):
        model, vocab, tokenizer = load_pretrained(run / "pretrain", device)
    for name, with_video in (("language prior", False), ("cross-modal", True)):
        with timed(rows, f"zero-shot, VideoBERT {name}"):
            zero_shot_row(model, tokenizer, vocab, val, template, verbs, nouns, with_video, max_len, ks)
    store = FeatureStore(run / "features")
    with timed(rows, "supervised probe (verb and noun)"):
        pooled_train = np.stack([f.mean(0) for f in segment_features(store, train)])
        pooled_val = np.stack([f.mean(0) for f in segment_features(store, val)])
        probe_row(pooled_train, train, pooled_val, val, verbs, nouns, ks, config.seed)

    clips = {"training": segment_features(store, train_seg), "validation": segment_features(store, val_seg)}
    with timed(rows, "captioning features (VideoBERT)"):
        videobert = {
            subset: caption_features(model, tokenizer, vocab, [s.video_words for s in segs], max_len=max_len)
            for subset, segs in (("training", train_seg), ("validation", val_seg))
        }
    decoded = []
    for kind in INPUTS:
        with timed(rows, f"captioner '{kind}' (train, decode)"):
            decoded.append(
                train_and_decode(
                    config,
                    kind,
                    caption_inputs(kind, clips["training"], videobert["training"]),
                    train_seg,
                    caption_inputs(kind, clips["validation"], videobert["validation"]),
                    device,
                )
            )
    with timed(rows, "caption metrics, 3 rows (one METEOR process)"):
        score_rows(decoded, val_seg)
    segments = [s for v in load_videos(tokens, ("validation",)) for s in v.segments if len(s.video_words)]
    with timed(rows, f"retrieval ({len(segments)} captions x {len(segments)} segments)"):
        retrieval_scores(
            model,
            tokenizer,
            vocab,
            [s.sentence for s in segments],
            [s.video_words for s in segments],
            max_len,
        )

    print(f"\nload average at end {os.getloadavg()}\n")
    print("| part | wall s | CPU s |\n|---|---:|---:|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} |")
    print(f"| total | {sum(r[1] for r in rows):.1f} | {sum(r[2] for r in rows):.1f} |")


if __name__ == "__main__":
    main()
