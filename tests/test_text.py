"""WordPiece: trained on a corpus the test writes, or loaded from a BERT vocab directory; bad vocabularies."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BertTokenizerFast

from vbert.bert.wordpiece import SPECIAL_TOKENS, build_tokenizer, load_tokenizer, read_vocab, train_wordpiece
from vbert.config import TextConfig
from vbert.errors import DataError

CORPUS = [
    "Now we chop the onions and slice the tomatoes.",
    "then you stir the sauce, um, and fry the chicken",
    "chopping chopped choppers: slice slicing sliced",
    "Season the soup with salt and pepper, then stir again.",
] * 20


def test_trained_vocabulary_loads_in_transformers(tmp_path: Path) -> None:
    tokenizer = train_wordpiece(CORPUS, vocab_size=120, out_dir=tmp_path)
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert len(tokenizer) <= 120
    reloaded = BertTokenizerFast.from_pretrained(str(tmp_path))
    text = "Chop the ONIONS, then stir the soup"
    ids = reloaded(text)["input_ids"]
    assert ids == tokenizer(text)["input_ids"]
    assert ids[0] == reloaded.cls_token_id and ids[-1] == reloaded.sep_token_id
    assert reloaded.decode(ids[1:-1]) == "chop the onions, then stir the soup"  # lower-cased, round trip
    assert reloaded.mask_token == "[MASK]" and reloaded.pad_token_id == 0
    pair = reloaded("stir the soup", "fry the chicken")
    assert set(pair["token_type_ids"]) == {0, 1}


def test_unseen_words_split_into_pieces(tmp_path: Path) -> None:
    tokenizer = train_wordpiece(CORPUS, vocab_size=80, out_dir=tmp_path)
    pieces = tokenizer.tokenize("slicings")
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])


def test_merges_take_the_most_frequent_pair_and_break_ties_by_spelling() -> None:
    from vbert.bert.wordpiece import learn_wordpiece_vocab

    assert learn_wordpiece_vocab({"aa": 2, "ab": 1}, 10) == ["##a", "##b", "a", "aa", "ab"]
    assert learn_wordpiece_vocab({"cd": 1, "ab": 1}, 5) == ["##b", "##d", "a", "c", "ab"]  # tie: "ab" first
    assert learn_wordpiece_vocab({"abab": 3, "ab": 1}, 10) == ["##a", "##b", "a", "ab", "##ab", "abab"]


def test_the_same_corpus_gives_the_same_vocabulary_in_every_process(tmp_path: Path) -> None:
    """The `tokenizers` trainer varies from run to run (hash-map order); ours must not."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\nfrom vbert.bert.wordpiece import train_wordpiece\n"
        f"train_wordpiece({CORPUS!r}, 90, sys.argv[1])\n"
    )
    vocabularies = []
    for seed in ("1", "2", "3"):
        out = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, timeout=120)
        vocabularies.append((out / "vocab.txt").read_text(encoding="utf-8"))
    assert vocabularies[0] == vocabularies[1] == vocabularies[2]
    assert vocabularies[0].count("\n") == 90  # the corpus has pairs enough to fill the size asked for


def test_load_existing_bert_vocab_directory(tmp_path: Path) -> None:
    words = ["the", "chop", "##ping", "onion", "##s", "stir", "soup", ",", "."]
    (tmp_path / "vocab.txt").write_text("\n".join([*SPECIAL_TOKENS, *words]) + "\n", encoding="utf-8")
    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.tokenize("Chopping the onions") == ["chop", "##ping", "the", "onion", "##s"]
    assert tokenizer.tokenize("stir soup quickly") == ["stir", "soup", "[UNK]"]
    assert tokenizer.mask_token_id == 4 and tokenizer.cls_token_id == 2
    cased = load_tokenizer(tmp_path, lowercase=False)
    assert cased.tokenize("Chopping") == ["[UNK]"]


def test_build_tokenizer_follows_the_config(tmp_path: Path) -> None:
    trained = build_tokenizer(TextConfig(vocab_size=100), CORPUS, tmp_path / "trained")
    assert (tmp_path / "trained" / "vocab.txt").is_file() and len(trained) <= 100
    loaded = build_tokenizer(TextConfig(tokenizer=str(tmp_path / "trained")), [], tmp_path / "unused")
    assert loaded.get_vocab() == trained.get_vocab()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n", r"lacks \[MASK\]"),
        ("the\nsoup\n", r"lacks \[CLS\], \[SEP\], \[MASK\]"),
    ],
)
def test_bad_vocabularies_are_refused(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "vocab.txt").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        load_tokenizer(tmp_path)
    assert "vocab.txt" in str(info.value)


def test_missing_directory_or_vocab_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_tokenizer(tmp_path / "nowhere")
    with pytest.raises(DataError, match="vocab.txt: vocabulary file not found"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="UTF-8"):
        read_vocab(tmp_path / "vocab.txt")


def test_empty_corpus_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        train_wordpiece(["", "   "], vocab_size=100, out_dir=tmp_path)


def test_tokenizer_json_only_directory(tmp_path: Path) -> None:
    trained = train_wordpiece(CORPUS, vocab_size=100, out_dir=tmp_path / "trained")
    only_json = tmp_path / "json"
    only_json.mkdir()
    (only_json / "tokenizer.json").write_text(
        (tmp_path / "trained" / "tokenizer.json").read_text(encoding="utf-8"), encoding="utf-8"
    )
    assert load_tokenizer(only_json).tokenize("Stir the soup") == trained.tokenize("Stir the soup")
    text = (only_json / "tokenizer.json").read_text(encoding="utf-8").replace('"[MASK]"', '"[MASQUE]"')
    (only_json / "tokenizer.json").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"tokenizer.json: the vocabulary lacks \[MASK\]"):
        load_tokenizer(only_json)
