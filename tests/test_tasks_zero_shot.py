"""Zero-shot template logic, label encoding, top-k accuracy and the caption label rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vbert.bert.model import BertConfig, BertForMaskedLM
from vbert.bert.wordpiece import SPECIAL_TOKENS
from vbert.errors import VbertError
from vbert.pretraining.joint_vocab import JointVocab
from vbert.tasks.labels import build_label_sets, labels_from_caption
from vbert.tasks.zero_shot import (
    accuracy_table,
    build_input,
    encode_labels,
    parse_template,
    top_k_accuracy,
    zero_shot_scores,
)

TEMPLATE = "now let me show you how to [MASK] the [MASK]"
WORDS = [
    "now",
    "let",
    "me",
    "show",
    "you",
    "how",
    "to",
    "the",
    "cut",
    "stir",
    "tomato",
    "egg",
    "sprink",
    "##le",
    "salt",
    "on",
    "top",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """A hand-written WordPiece vocabulary: 'sprinkle' is two pieces, 'zucchini' is [UNK]."""
    from vbert.bert.wordpiece import load_tokenizer

    folder = tmp_path_factory.mktemp("vocab")
    (folder / "vocab.txt").write_text("\n".join([*SPECIAL_TOKENS, *WORDS]) + "\n", encoding="utf-8")
    return load_tokenizer(folder)


class ScriptedMLM(nn.Module):
    """A stand-in masked LM whose logits follow a script: at the k-th [MASK] of the verb (noun) slot it
    favours piece k of the verb (noun) tied to the sequence's first visual word."""

    def __init__(
        self, vocab: JointVocab, answers: dict[int, tuple[list[int], list[int]]], mask_id: int
    ) -> None:
        super().__init__()
        self.vocab, self.answers, self.mask_id = vocab, answers, mask_id
        self.dummy = nn.Parameter(torch.zeros(1))
        self.ids: torch.Tensor | None = None

    def bert(self, ids: torch.Tensor, types: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        self.ids = ids
        b, length = ids.shape
        hidden = torch.zeros(b, length, 2)
        hidden[:, :, 0] = torch.arange(b)[:, None]
        hidden[:, :, 1] = torch.arange(length)[None, :]
        return hidden

    def mlm_logits(self, h: torch.Tensor) -> torch.Tensor:
        rows = []
        for b, pos in h.long().tolist():
            row = self.ids[b].tolist()
            masks = [i for i, t in enumerate(row) if t == self.mask_id]
            groups = [[masks[0]]]
            for i in masks[1:]:
                (groups[-1].append(i) if i == groups[-1][-1] + 1 else groups.append([i]))
            video = [t - self.vocab.text_size for t in row if self.vocab.text_size <= t < self.vocab.next_id]
            verb, noun = self.answers.get(video[0] if video else -1, ([], []))
            logits = torch.zeros(self.vocab.size)
            for group, pieces in zip(groups, (verb, noun)):
                if pos in group and group.index(pos) < len(pieces):
                    logits[pieces[group.index(pos)]] = 10.0
            rows.append(logits)
        return torch.stack(rows)


def test_template_needs_exactly_two_slots() -> None:
    t = parse_template(TEMPLATE)
    assert (t.prefix, t.middle, t.suffix) == ("now let me show you how to", "the", "")
    for bad in ("how to [MASK] it", "[MASK] the [MASK] and [MASK]", "no slots"):
        with pytest.raises(VbertError, match="exactly two"):
            parse_template(bad)


def test_labels_absent_from_vocabulary(tokenizer) -> None:
    with pytest.raises(VbertError, match="absent from the text vocabulary.*'zucchini'"):
        encode_labels(["tomato", "zucchini"], tokenizer, "noun")
    with pytest.warns(RuntimeWarning, match="dropped"):
        labels = encode_labels(["tomato", "zucchini"], tokenizer, "noun", drop_unknown=True)
    assert labels.names == ["tomato"]
    with pytest.raises(VbertError, match="no noun label"), pytest.warns(RuntimeWarning):
        encode_labels(["zucchini"], tokenizer, "noun", drop_unknown=True)


def test_multi_piece_labels_widen_the_slot(tokenizer) -> None:
    verbs = encode_labels(["cut", "stir", "sprinkle"], tokenizer, "verb")
    nouns = encode_labels(["tomato", "egg", "salt"], tokenizer, "noun")
    assert verbs.lengths() == [1, 2]
    vocab = JointVocab(text_size=len(tokenizer), visual_size=4)
    ids = {w: tokenizer.convert_tokens_to_ids(w) for w in WORDS}
    answers = {
        0: ([ids["cut"]], [ids["tomato"]]),
        1: ([ids["sprink"], ids["##le"]], [ids["salt"]]),
        2: ([ids["stir"]], [ids["egg"]]),
    }
    model = ScriptedMLM(vocab, answers, vocab.mask_id)
    scores = zero_shot_scores(model, tokenizer, vocab, TEMPLATE, [[0, 3], [1], [2, 2]], verbs, nouns)
    assert scores.verb_scores.shape == (3, 3) and scores.noun_scores.shape == (3, 3)
    assert list(scores.verb_scores.argmax(1)) == [0, 2, 1]
    assert list(scores.noun_scores.argmax(1)) == [0, 2, 1]
    table = accuracy_table(scores, ["cut", "sprinkle", "cut"], ["tomato", "salt", "egg"], ks=(1, 3))
    assert table["verb top-1"] == pytest.approx(200 / 3) and table["noun top-1"] == pytest.approx(100.0)
    assert table["verb top-3"] == pytest.approx(100.0)


def test_input_layout(tokenizer) -> None:
    vocab = JointVocab(text_size=len(tokenizer), visual_size=4)
    ids, types = build_input([10, 11], [3, 1], vocab, max_len=16)
    assert ids == [
        vocab.cls_id,
        10,
        11,
        vocab.next_id,
        vocab.text_size + 3,
        vocab.text_size + 1,
        vocab.sep_id,
    ]
    assert types == [0, 0, 0, 1, 1, 1, 1]
    ids, types = build_input([10, 11], None, vocab, max_len=16)
    assert ids == [vocab.cls_id, 10, 11, vocab.sep_id] and types == [0, 0, 0, 0]
    ids, _ = build_input([10, 11], list(range(4)) * 10, vocab, max_len=10)
    assert len(ids) == 10  # the video is cut to fit


def test_real_model_scores_are_finite_log_probs(tokenizer) -> None:
    torch.manual_seed(0)
    vocab = JointVocab(text_size=len(tokenizer), visual_size=4)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=vocab.size,
            hidden_size=16,
            num_layers=1,
            num_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        )
    )
    verbs = encode_labels(["cut", "sprinkle"], tokenizer)
    nouns = encode_labels(["tomato", "egg"], tokenizer)
    scores = zero_shot_scores(model, tokenizer, vocab, TEMPLATE, [[0, 1, 2], None], verbs, nouns, max_len=32)
    assert np.isfinite(scores.verb_scores).all() and (scores.verb_scores < 0).all()
    assert np.isfinite(scores.noun_scores).all()


def test_top_k_accuracy() -> None:
    scores = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]])
    assert top_k_accuracy(scores, [1, 2, 0], 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(scores, [1, 2, 0], 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, [1, 2, 0], 3) == 1.0
    with pytest.raises(VbertError):
        top_k_accuracy(np.zeros((0, 3)), [], 1)


def test_labels_from_caption_rule() -> None:
    verbs, nouns = ["add", "cut", "stir"], ["onion", "tomato", "pan"]
    assert labels_from_caption("Add the chopped onions to the pan.", verbs, nouns) == ("add", "onion")
    assert labels_from_caption("cut tomatoes into cubes", verbs, nouns) == ("cut", "tomato")
    assert labels_from_caption("the onion, stir well", verbs, nouns) == ("stir", "onion")
    assert labels_from_caption("serve and enjoy", verbs, nouns) == (None, None)


def test_build_label_sets_from_captions() -> None:
    captions = ["add the onions to the pan", "add onion", "cut the tomato", "cut tomatoes", "stir"]
    verbs, nouns = build_label_sets(captions, min_count=2)
    assert verbs == ["add", "cut"] and nouns == ["onion", "tomato"]
