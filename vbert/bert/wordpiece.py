"""WordPiece text: train a vocabulary on narrations, or load an existing BERT vocabulary directory.

Both give a `transformers.BertTokenizerFast` with BERT's special tokens; a trained vocabulary
puts them first: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vbert.errors import DataError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
REQUIRED_TOKENS = ("[CLS]", "[SEP]", "[MASK]")
WORDPIECE_TRAINER_VERSION = 2  # bump when `learn_wordpiece_vocab` changes, so cached models are retrained


def train_wordpiece(
    texts: Iterable[str], vocab_size: int, out_dir: str | Path, lowercase: bool = True
) -> Any:
    """Train a WordPiece vocabulary on `texts`, save it to out_dir, return a BertTokenizerFast.

    The same texts always give the same vocabulary, in the same order (see `learn_wordpiece_vocab`).
    """
    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizerFast

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise DataError(f"{out_dir}: no text to train a WordPiece vocabulary on (the corpus is empty)")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size {vocab_size} leaves no room beyond the {len(SPECIAL_TOKENS)} special tokens"
        )
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    splitter = pre_tokenizers.BertPreTokenizer()  # BERT's split: whitespace, and punctuation on its own
    counts = Counter(
        word for text in texts for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))
    )
    vocab = [*SPECIAL_TOKENS, *learn_wordpiece_vocab(counts, vocab_size - len(SPECIAL_TOKENS))]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (out_dir / stale).unlink(missing_ok=True)  # from_pretrained must read the new vocab.txt
    (out_dir / "vocab.txt").write_text("".join(f"{token}\n" for token in vocab), encoding="utf-8")
    fast = BertTokenizerFast.from_pretrained(str(out_dir), do_lower_case=lowercase)
    fast.save_pretrained(str(out_dir))
    return fast


def learn_wordpiece_vocab(word_counts: dict[str, int], size: int, prefix: str = "##") -> list[str]:
    """At most `size` WordPiece tokens learnt from word counts by merging the most frequent adjacent pair.

    Words start as characters (`c`, `##h`, `##o`, ...); each step merges the pair that occurs most
    often (counting each word as often as it occurs) into one token, until `size` tokens exist or
    every word is a single token. This is how the `tokenizers` library trains WordPiece, but ties
    are broken by the pair's spelling rather than by hash-map order, so the result never varies
    from one run to the next (that library's does: huggingface/tokenizers issue 1794).
    """
    spelled = sorted(w for w in word_counts if w)
    words = [[w[0], *(prefix + c for c in w[1:])] for w in spelled]  # [symbols] per word
    freq = [word_counts[w] for w in spelled]
    vocab = sorted({symbol for word in words for symbol in word})[:size]
    known = set(vocab)
    pair_count: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = {}
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_count[pair] += freq[i]
            where.setdefault(pair, set()).add(i)
    heap = [(-n, pair) for pair, n in pair_count.items()]  # most frequent first, then by spelling
    heapq.heapify(heap)
    while len(vocab) < size and heap:
        negative, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negative or negative == 0:
            continue  # a stale entry: this pair's count changed since it was pushed
        a, b = pair
        merged = a + (b[len(prefix) :] if b.startswith(prefix) else b)
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        changed: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair)):
            word, old = words[i], list(zip(words[i], words[i][1:]))
            out, j = [], 0
            while j < len(word):
                if j + 1 < len(word) and word[j] == a and word[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            words[i] = out
            for p in old:
                pair_count[p] -= freq[i]
                changed.add(p)
            for p in zip(out, out[1:]):
                pair_count[p] += freq[i]
                where.setdefault(p, set()).add(i)
                changed.add(p)
        for p in sorted(changed):
            if pair_count[p] > 0:
                heapq.heappush(heap, (-pair_count[p], p))
            else:
                pair_count.pop(p, None)
    return vocab


def read_vocab(path: str | Path) -> list[str]:
    """Read a BERT vocab.txt (one token a line), refusing an empty file or one without [CLS]/[SEP]/[MASK]."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: vocabulary file not found")
    try:
        tokens = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err})") from None
    if not any(t.strip() for t in tokens):
        raise DataError(f"{path}: the vocabulary is empty")
    absent = [t for t in REQUIRED_TOKENS if t not in set(tokens)]
    if absent:
        raise DataError(f"{path}: the vocabulary lacks {', '.join(absent)}")
    return tokens


def _tokenizer_json_vocab(path: Path) -> list[str]:
    """The WordPiece vocabulary inside a tokenizers `tokenizer.json`, with the same checks as vocab.txt."""
    try:
        model = json.loads(path.read_text(encoding="utf-8"))["model"]
        vocab = model["vocab"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a tokenizers file with a WordPiece vocabulary ({err})") from None
    if model.get("type") != "WordPiece" or not isinstance(vocab, dict):
        raise DataError(f"{path}: expected a WordPiece model, found {model.get('type')!r}")
    if not vocab:
        raise DataError(f"{path}: the vocabulary is empty")
    absent = [t for t in REQUIRED_TOKENS if t not in vocab]
    if absent:
        raise DataError(f"{path}: the vocabulary lacks {', '.join(absent)}")
    return sorted(vocab, key=vocab.get)


def load_tokenizer(directory: str | Path, lowercase: bool | None = None) -> Any:
    """Load a BERT vocabulary directory (vocab.txt and/or tokenizer.json) as a BertTokenizerFast.

    `lowercase` defaults to what the directory's tokenizer files say (uncased when only vocab.txt).
    For bert-base-uncased, save it once with the network:
    `transformers.BertTokenizerFast.from_pretrained("bert-base-uncased").save_pretrained(directory)`.
    """
    from transformers import BertTokenizerFast

    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: tokenizer directory not found")
    if (directory / "vocab.txt").is_file():
        read_vocab(directory / "vocab.txt")
    elif (directory / "tokenizer.json").is_file():
        _tokenizer_json_vocab(directory / "tokenizer.json")
    else:
        raise DataError(f"{directory / 'vocab.txt'}: vocabulary file not found (nor tokenizer.json)")
    kwargs = {} if lowercase is None else {"do_lower_case": lowercase}
    try:
        return BertTokenizerFast.from_pretrained(str(directory), **kwargs)
    except (OSError, ValueError) as err:
        raise DataError(f"{directory}: transformers cannot load this tokenizer ({err})") from None


def build_tokenizer(text_cfg: Any, texts: Iterable[str], out_dir: str | Path) -> Any:
    """From a `vbert.config.TextConfig`: train on `texts` ("train") or load the named directory."""
    if text_cfg.tokenizer == "train":
        return train_wordpiece(texts, text_cfg.vocab_size, out_dir, lowercase=text_cfg.lowercase)
    return load_tokenizer(text_cfg.tokenizer, lowercase=text_cfg.lowercase)
