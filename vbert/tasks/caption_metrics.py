"""Caption metrics with the standard implementations: BLEU-3/4, METEOR, ROUGE-L and CIDEr-D.

The scorers are the COCO caption evaluation code (`pycocoevalcap`), as in the captioning papers
the paper compares with. Only tokenization differs: instead of the Stanford PTB tokenizer (a Java
process) captions are lower-cased, the PTB tokenizer's punctuation marks are removed, and the rest
is split on white space, which gives the same tokens on plain captions. METEOR runs Meteor 1.5 in
Java; where `java` is missing METEOR is reported as missing (None) with a warning, never replaced
by another implementation, whose numbers would not be comparable.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Mapping, Sequence

from vbert.errors import DataError

# Sentence punctuation (removed wherever it is) and quotes/dashes standing alone (the COCO
# evaluation drops these tokens after PTB tokenization); "stir-fry" and "let's" stay one word.
_PUNCTUATION = re.compile(r"[.?!,:;\"()\[\]{}`]|(?<!\w)['-]+|['-]+(?!\w)")

METRICS = ("BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def tokenize_caption(text: str) -> str:
    """Lower-case, drop punctuation, normalise white space: 'Cut the Tomato.' -> 'cut the tomato'."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def require_scorers() -> None:
    """Fail at once, with the fix, where `pycocoevalcap` is missing (before any caption model trains)."""
    try:
        import pycocoevalcap  # noqa: F401
    except ImportError:
        raise DataError(
            "caption metrics need the COCO caption evaluation code, which is not installed: "
            "`pip install pycocoevalcap` (a dependency of vbert)"
        ) from None


def java_available() -> bool:
    """True when a `java` executable is on PATH (METEOR needs it)."""
    return shutil.which("java") is not None


def _prepare(
    references: Mapping[str, Sequence[str] | str], hypotheses: Mapping[str, str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Check keys and emptiness; return tokenized {id: [refs]} and {id: [hyp]}."""
    if not references:
        raise DataError("caption metrics: no references given")
    missing = sorted(set(references) - set(hypotheses))
    extra = sorted(set(hypotheses) - set(references))
    if missing or extra:
        raise DataError(
            f"caption metrics: references and hypotheses cover different items "
            f"(no hypothesis for {missing[:5]}, no reference for {extra[:5]})"
        )
    gts: dict[str, list[str]] = {}
    res: dict[str, list[str]] = {}
    for key in sorted(references, key=str):
        refs = references[key]
        refs = [refs] if isinstance(refs, str) else list(refs)
        tokens = [tokenize_caption(r) for r in refs]
        if not tokens or any(not t for t in tokens):
            raise DataError(f"caption metrics: item {key!r} has an empty reference caption {refs!r}")
        gts[str(key)] = tokens
        # An empty hypothesis is a legitimate (bad) output; the scorers need one token to split.
        res[str(key)] = [tokenize_caption(hypotheses[key]) or "<empty>"]
    return gts, res


def caption_scores(
    references: Mapping[str, Sequence[str] | str],
    hypotheses: Mapping[str, str],
    meteor: bool = True,
) -> dict[str, float | None]:
    """Corpus-level BLEU-3, BLEU-4, METEOR, ROUGE-L and CIDEr-D (CIDEr on COCO's 0-10 scale).

    `references` maps an item id to one caption or a list of captions, `hypotheses` an item id to
    the generated caption. BLEU/METEOR/ROUGE-L are fractions in [0, 1]. METEOR is None when Java is
    missing (a warning says so) or when `meteor=False`.
    """
    return caption_scores_many(references, [hypotheses], meteor)[0]


def caption_scores_many(
    references: Mapping[str, Sequence[str] | str],
    systems: Sequence[Mapping[str, str]],
    meteor: bool = True,
) -> list[dict[str, float | None]]:
    """`caption_scores` of several systems on the same references (METEOR in one Java process)."""
    require_scorers()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    prepared = [_prepare(references, hypotheses) for hypotheses in systems]
    out: list[dict[str, float | None]] = []
    for gts, res in prepared:
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
        out.append(
            {
                "BLEU-3": float(bleu[2]),
                "BLEU-4": float(bleu[3]),
                "METEOR": None,
                "ROUGE-L": float(rouge),
                "CIDEr": float(cider),
            }
        )
    if meteor and prepared:
        for scores, value in zip(out, _meteor_many(prepared)):
            scores["METEOR"] = value
    return out


def _meteor_many(prepared: list[tuple[dict[str, list[str]], dict[str, list[str]]]]) -> list[float | None]:
    """Meteor 1.5 corpus scores of several systems, one Java process; Nones with a warning without Java."""
    if not java_available():
        warnings.warn(
            "METEOR not computed: it needs Java (`java` is not on PATH); reported as missing",
            RuntimeWarning,
            stacklevel=3,
        )
        return [None] * len(prepared)
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()  # loading the paraphrase tables takes seconds: done once for all systems
    try:
        return [float(scorer.compute_score(gts, res)[0]) for gts, res in prepared]
    finally:
        del scorer  # closes the Java process


def meteor_score(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float | None:
    """Meteor 1.5 (Java) on tokenized captions; None with a warning where Java is missing."""
    corpus, _ = meteor_item_scores(gts, res)
    return corpus


def meteor_item_scores(
    gts: dict[str, list[str]], res: dict[str, list[str]]
) -> tuple[float | None, dict[str, float]]:
    """Meteor 1.5 corpus score and per-item scores; (None, {}) with a warning where Java is missing."""
    if not java_available():
        warnings.warn(
            "METEOR not computed: it needs Java (`java` is not on PATH); reported as missing",
            RuntimeWarning,
            stacklevel=3,
        )
        return None, {}
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()  # starts one Java process (loading the paraphrase tables takes seconds)
    try:
        score, per_item = scorer.compute_score(gts, res)
    finally:
        del scorer  # closes the Java process
    return float(score), {key: float(v) for key, v in zip(gts, per_item)}


def format_scores(scores: Mapping[str, float | None]) -> dict[str, str]:
    """Scores as the paper prints them: BLEU/METEOR/ROUGE-L in percent, CIDEr as is; 'missing' for None."""
    out = {}
    for name in METRICS:
        value = scores.get(name)
        if value is None:
            out[name] = "missing"
        else:
            out[name] = f"{value:.2f}" if name == "CIDEr" else f"{100 * value:.2f}"
    return out
