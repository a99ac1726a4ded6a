"""How fast the pretraining input pipeline builds batches, against the rate a GPU consumes them.

    python benchmarks/pretrain_data_bench.py --batch-size 128 --seq-len 128 --workers 0 2 4
    python benchmarks/pretrain_data_bench.py --data runs/demo/tokenize --preset base

Without --data, a token file of --videos synthetic narrated videos (random words and visual words,
the documented tokens.jsonl format) is written to a temporary folder. Prints batches/s and
sequences/s per worker count; a GPU step rate above that number would leave the GPU waiting.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def write_synthetic_tokens(path: Path, videos: int, visual_size: int, seed: int = 0) -> Path:
    """A tokens.jsonl of `videos` narrated videos with random words (sizes like SynthCook's)."""
    rng = np.random.default_rng(seed)
    words_pool = [f"word{i}" for i in range(400)]
    with open(path, "w", encoding="utf-8") as handle:
        for v in range(videos):
            sentences, words = [], []
            for _ in range(int(rng.integers(6, 14))):
                clip = rng.integers(0, visual_size, int(rng.integers(2, 8))).tolist()
                text = " ".join(rng.choice(words_pool, int(rng.integers(5, 16))))
                sentences.append({"text": text, "start": 0.0, "end": 1.0, "video_words": clip})
                words += clip
            handle.write(
                json.dumps(
                    {
                        "video_id": f"v{v}",
                        "subset": "training",
                        "words": words,
                        "sentences": sentences,
                        "segments": [],
                    }
                )
                + "\n"
            )
    return path


def main() -> None:
    """Measure batch building with 0..N DataLoader workers."""
    from vbert.bert.wordpiece import train_wordpiece
    from vbert.config import load_config
    from vbert.pretraining.data import ExampleBuilder, PretrainBatches, tokenize_records
    from vbert.pretraining.joint_vocab import JointVocab
    from vbert.visual_words.token_file import read_token_file

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="base")
    parser.add_argument("--data", default=None, help="tokens.jsonl (or folder); default: synthetic")
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--seq-len", type=int, default=None, help="default: the preset's")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()

    config = load_config(args.preset)
    pcfg = config.pretrain
    pcfg.batch_size = args.batch_size or pcfg.batch_size
    pcfg.max_seq_len = args.seq_len or pcfg.max_seq_len
    visual_size = config.vocab.k**config.vocab.depth
    with tempfile.TemporaryDirectory() as tmp:
        data = (
            Path(args.data)
            if args.data
            else write_synthetic_tokens(Path(tmp) / "tokens.jsonl", args.videos, visual_size)
        )
        records = read_token_file(data, visual_size)
        tokenizer = train_wordpiece(
            [s["text"] for r in records for s in r["sentences"]], config.text.vocab_size, Path(tmp) / "tok"
        )
        vocab = JointVocab.from_tokenizer(tokenizer, visual_size)
        builder = ExampleBuilder(tokenize_records(records, tokenizer), vocab, pcfg)
        print(f"batch {pcfg.batch_size} x {pcfg.max_seq_len}, {len(records)} videos, vocabulary {vocab.size}")
        for workers in args.workers:
            batches = iter(PretrainBatches(builder, pcfg.batch_size, num_workers=workers))
            for _ in range(max(2, workers * 2)):  # start the workers and fill their queues
                next(batches)
            start = time.perf_counter()
            for _ in range(args.batches):
                next(batches)
            rate = args.batches / (time.perf_counter() - start)
            print(f"workers {workers}: {rate:7.1f} batches/s  {rate * pcfg.batch_size:9.0f} sequences/s")


if __name__ == "__main__":
    main()
