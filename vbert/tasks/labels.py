"""Verb and noun labels read from a caption (how YouCook2's segments get zero-shot labels).

YouCook2 annotations have a sentence per segment but no verb or noun. Our documented rule, for
imperative recipe captions such as "add the chopped onions to the pan":

1. tokenize as the caption metrics do (lower case, punctuation removed);
2. a token matches a label when it equals it, or equals it after removing a plural ending
   ("onions" -> "onion", "tomatoes" -> "tomato");
3. the verb is the first token that matches a verb label;
4. the noun is the first token after the verb that matches a noun label (a noun before the verb,
   as in "the onions go in the pan", is used only when nothing follows the verb).

A caption with no verb or no noun gives None for it; such segments are left out of that score.

The label sets: SynthCook's world lists its verbs and nouns. For YouCook2, `build_label_sets`
takes the most frequent first words of the training captions as verbs (the captions are
imperative) and the most frequent words right after the verb and an optional article as nouns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from vbert.tasks.caption_metrics import tokenize_caption

ARTICLES = frozenset(
    {
        "the",
        "a",
        "an",
        "some",
        "of",
        "and",
        "in",
        "to",
        "on",
        "into",
        "with",
        "it",
        "them",
        "all",
        "more",
        "chopped",
        "sliced",
        "diced",
        "minced",
        "cooked",
        "remaining",
        "little",
        "few",
    }
)


def _singular_forms(token: str) -> tuple[str, ...]:
    """The token and its candidate singulars: 'tomatoes' -> ('tomatoes', 'tomatoe', 'tomato')."""
    forms = [token]
    if token.endswith("es"):
        forms.append(token[:-1])
        forms.append(token[:-2])
    elif token.endswith("s") and not token.endswith("ss"):
        forms.append(token[:-1])
    return tuple(forms)


def _match(token: str, labels: frozenset[str]) -> str | None:
    for form in _singular_forms(token):
        if form in labels:
            return form
    return None


def labels_from_caption(
    caption: str, verbs: Iterable[str], nouns: Iterable[str]
) -> tuple[str | None, str | None]:
    """(verb, noun) read from a caption by the rule in this module's docstring."""
    verb_set, noun_set = frozenset(verbs), frozenset(nouns)
    tokens = tokenize_caption(caption).split()
    verb, verb_at = None, len(tokens)
    for i, token in enumerate(tokens):
        if token in verb_set:
            verb, verb_at = token, i
            break
    noun = None
    for token in tokens[verb_at + 1 :]:
        noun = _match(token, noun_set)
        if noun:
            break
    if noun is None:
        for token in tokens[:verb_at]:
            noun = _match(token, noun_set)
            if noun:
                break
    return verb, noun


def build_label_sets(
    captions: Sequence[str], max_verbs: int = 50, max_nouns: int = 100, min_count: int = 2
) -> tuple[list[str], list[str]]:
    """Verb and noun label sets from training captions: frequent first words, frequent words after them."""
    verbs: Counter[str] = Counter()
    nouns: Counter[str] = Counter()
    for caption in captions:
        tokens = tokenize_caption(caption).split()
        if len(tokens) < 2:
            continue
        verbs[tokens[0]] += 1
        rest = [t for t in tokens[1:] if t not in ARTICLES]
        if rest:
            nouns[rest[0]] += 1
    for word in list(nouns):  # plurals join their singular when the singular occurs too
        singular = next((f for f in _singular_forms(word)[1:] if f in nouns), None)
        if singular:
            nouns[singular] += nouns.pop(word)
    verb_list = [w for w, c in verbs.most_common(max_verbs) if c >= min_count]
    noun_list = [w for w, c in nouns.most_common() if c >= min_count and w not in verb_list][:max_nouns]
    return sorted(verb_list), sorted(noun_list)
