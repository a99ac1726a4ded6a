"""Try one pretraining recipe on a preset's tokens: does the model read the video at the template's slots?

    VBERT_CACHE=runs/cache python benchmarks/zero_shot_recipe.py --preset tiny \
        --set pretrain.steps=500 --set pretrain.mask_prob=0.5 --set "pretrain.regime_mix=[0,0,1]"

Pretrains VideoBERT with the overrides into a temporary folder (nothing is cached), then prints the
final losses, zero-shot top-1/top-5 with the segment's visual words (cross-modal) and without them
(language prior) on the validation and the training segments, and the mean absolute change of the
label log-probabilities that the video causes. A model that ignores the video shows the same numbers
in both rows and a change near 0.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    """Pretrain one recipe and report its zero-shot rows."""
    import numpy as np

    from vbert.config import load_config
    from vbert.core.stages import resolve
    from vbert.pretraining.saved import load_pretrained
    from vbert.pretraining.stage import run_pretraining
    from vbert.tasks.action_table import zero_shot_row
    from vbert.tasks.data import load_segments, with_labels
    from vbert.tasks.zero_shot import encode_labels, zero_shot_scores
    from vbert.visual_words.tokenize import STAGE as TOKENIZE
    from vbert.visual_words.vocab import STAGE as VOCAB
    from vbert.visual_words.vocab import vocab_file

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    config = load_config(args.preset, [*args.set, "pretrain.tensorboard=false"])
    tokens = resolve(TOKENIZE, config)
    train, val, verbs, nouns = with_labels(
        load_segments(tokens, ("training",)), load_segments(tokens, ("validation",))
    )
    centroids = vocab_file(resolve(VOCAB, config)) if config.pretrain.visual_init == "centroids" else None
    template, max_len = config.eval.zero_shot_template, config.pretrain.max_seq_len
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = run_pretraining(
            config, tokens, folder, resume="never", device=args.device, vocab_file=centroids
        )
        seconds = time.perf_counter() - start
        model, vocab, tokenizer = load_pretrained(folder, args.device)
    last = result.history[-1]
    print(
        f"{' '.join(args.set) or 'preset as is'}: {result.step} steps in {seconds:.0f} s; final losses "
        + ", ".join(f"{k} {last[k]:.2f}" for k in ("text_mlm", "video_mlm", "joint_mlm", "align"))
        + f", alignment accuracy {last['align_acc']:.2f}"
    )
    for name, segments in (("validation", val), ("training", train)):
        for with_video in (True, False):
            row = zero_shot_row(
                model, tokenizer, vocab, segments, template, verbs, nouns, with_video, max_len
            )
            print(
                f"  {name:10} {'cross-modal' if with_video else 'prior':11} "
                + "  ".join(f"{k} {v:5.1f}" for k, v in row.items())
            )
    verb_set, noun_set = encode_labels(verbs, tokenizer, "verb"), encode_labels(nouns, tokenizer, "noun")
    scores = [
        zero_shot_scores(model.mlm, tokenizer, vocab, template, videos, verb_set, noun_set, max_len=max_len)
        for videos in ([s.video_words for s in val], [None] * len(val))
    ]
    print(
        f"  mean |change of label log-probability| from the video: verb "
        f"{np.abs(scores[0].verb_scores - scores[1].verb_scores).mean():.3f}, noun "
        f"{np.abs(scores[0].noun_scores - scores[1].noun_scores).mean():.3f}"
    )


if __name__ == "__main__":
    main()
