"""WordPiece text: train a vocabulary on narrations, or load an existing BERT vocabulary directory.

Both give a `transformers.BertTokenizerFast` with BERT's special tokens; a trained vocabulary
puts them first: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vbert.errors import DataError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
REQUIRED_TOKENS = ("[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(
    texts: Iterable[str], vocab_size: int, out_dir: str | Path, lowercase: bool = True
) -> Any:
    """Train a WordPiece vocabulary on `texts`, save it to out_dir, return a BertTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise DataError(f"{out_dir}: no text to train a WordPiece vocabulary on (the corpus is empty)")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} leaves no room beyond the "
                         f"{len(SPECIAL_TOKENS)} special tokens")
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                        continuing_subword_prefix="##", show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (out_dir / stale).unlink(missing_ok=True)  # from_pretrained must read the new vocab.txt
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])  # [(token, id)] by id
    (out_dir / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")
    fast = BertTokenizerFast.from_pretrained(str(out_dir), do_lower_case=lowercase)
    fast.save_pretrained(str(out_dir))
    return fast


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
