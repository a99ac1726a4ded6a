"""Pretraining data: joint vocabulary, token files, the three regimes, masking, negatives, noise, batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from toy_tokens import DEPTH, NOUNS, VERBS, K, write_tokens

from vbert.bert.model import IGNORE_INDEX
from vbert.bert.wordpiece import SPECIAL_TOKENS
from vbert.config import PretrainConfig
from vbert.errors import DataError
from vbert.pretraining.data import (
    JOINT,
    TEXT,
    VIDEO,
    ExampleBuilder,
    PretrainBatches,
    regime_counts,
    synthetic_batch,
    tokenize_records,
)
from vbert.pretraining.joint_vocab import JointVocab
from vbert.visual_words.token_file import read_token_file


class WordTokenizer:
    """A whitespace tokenizer with BERT's special ids, enough for the data side (no training needed)."""

    def __init__(self) -> None:
        self.vocab = [
            *SPECIAL_TOKENS,
            *sorted(set(VERBS + NOUNS + ["so", "now", "okay", "and", "then", "we", "the"])),
        ]

    def __len__(self) -> int:
        return len(self.vocab)

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.vocab.index(token)

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[self.vocab.index(w) for w in t.split()] for t in texts]}


@pytest.fixture
def corpus(tmp_path):
    records = read_token_file(write_tokens(tmp_path / "tokens.jsonl"), K**DEPTH)
    tokenizer = WordTokenizer()
    vocab = JointVocab.from_tokenizer(tokenizer, K**DEPTH)
    return tokenize_records(records, tokenizer), vocab


def config(**kw) -> PretrainConfig:
    base = dict(max_seq_len=40, max_text_len=16, video_only_len=24, regime_mix=(0.25, 0.25, 0.5))
    base.update(kw)
    return PretrainConfig(**base)


def test_joint_vocabulary_layout():
    vocab = JointVocab.from_tokenizer(WordTokenizer(), 36)
    assert vocab.text_size == 24 and vocab.visual_size == 36  # 5 specials + 19 words
    assert vocab.visual_ids(np.array([0, 35])).tolist() == [24, 59]
    assert vocab.next_id == 60 and vocab.size == 61  # [>] is the last id
    assert (vocab.cls_id, vocab.sep_id, vocab.mask_id, vocab.pad_id) == (2, 3, 4, 0)
    assert vocab.text_low == 5 and vocab.next_id in vocab.special_ids


def test_sequences_of_each_regime_have_the_papers_layout(corpus):
    videos, vocab = corpus
    builder = ExampleBuilder(videos, vocab, config())
    rng = np.random.default_rng(0)
    text = builder.text_only(rng)
    assert text.ids[0] == vocab.cls_id and text.ids[-1] == vocab.sep_id and (text.types == 0).all()
    assert (text.ids[1:-1] < vocab.text_size).all()
    video = builder.video_only(rng)
    assert video.ids[0] == vocab.cls_id and video.ids[-1] == vocab.sep_id
    assert ((video.ids[1:-1] >= vocab.text_size) & (video.ids[1:-1] < vocab.next_id)).all()
    assert video.types.tolist() == [0] + [1] * (len(video.ids) - 1)
    joint = builder.video_text(rng)
    split = int(np.flatnonzero(joint.ids == vocab.next_id)[0])  # exactly one [>]
    assert (joint.ids == vocab.next_id).sum() == 1
    assert (joint.ids[1:split] < vocab.text_size).all() and (
        joint.ids[split + 1 : -1] >= vocab.text_size
    ).all()
    assert joint.types.tolist() == [0] * split + [1] * (len(joint.ids) - split)
    assert joint.aligned in (0, 1, IGNORE_INDEX) and text.aligned == video.aligned == IGNORE_INDEX


def test_batches_have_fixed_shapes_and_regime_counts(corpus):
    videos, vocab = corpus
    cfg = config()
    batches = PretrainBatches(ExampleBuilder(videos, vocab, cfg), batch_size=8, seed=1)
    shapes = None
    for i in range(5):
        b = batches.batch(i)
        now = {k: tuple(v.shape) for k, v in b.items()}
        assert shapes is None or now == shapes  # every batch the same shape: compile never recompiles
        shapes = now
        assert b["input_ids"].shape == (8, 40)
        assert b["regime"].tolist() == [TEXT] * 2 + [VIDEO] * 2 + [JOINT] * 4
        assert (b["align_labels"][b["regime"] != JOINT] == IGNORE_INDEX).all()  # alignment: video-text only
        assert ((b["attention_mask"] == 0) == (b["input_ids"] == vocab.pad_id)).all()
    assert regime_counts(10, (0.25, 0.25, 0.5)) == [3, 2, 5]  # largest remainder, ties to the first
    assert sum(regime_counts(7, (1, 1, 1))) == 7


def test_masking_never_touches_specials_and_replacements_keep_their_modality(corpus):
    videos, vocab = corpus
    cfg = config(mask_prob=0.5, mask_frac=0.0, random_frac=1.0)  # every chosen token replaced at random
    batches = PretrainBatches(ExampleBuilder(videos, vocab, cfg), batch_size=16, seed=2)
    b = batches.batch(0)
    positions, labels = b["mlm_positions"], b["mlm_labels"]
    real = labels != IGNORE_INDEX
    assert real.sum() > 50
    assert not torch.isin(labels[real], torch.tensor(vocab.special_ids)).any()  # never [CLS]/[SEP]/[PAD]/[>]
    flat = b["input_ids"].reshape(-1)
    was_video = labels[real] >= vocab.text_size
    now = flat[positions[real]]
    assert ((now >= vocab.text_size) & (now < vocab.next_id))[was_video].all()  # video stays video
    assert ((now >= vocab.text_low) & (now < vocab.text_size))[~was_video].all()  # text stays text
    specials_in = torch.isin(flat, torch.tensor([vocab.cls_id, vocab.sep_id, vocab.next_id]))
    assert specials_in.sum() == 16 * 2 + 8  # [CLS] and [SEP] in every row, [>] in the 8 video-text rows


def test_alignment_negatives_follow_the_configured_ratio(corpus):
    videos, vocab = corpus
    builder = ExampleBuilder(videos, vocab, config(alignment_share=1.0, negative_prob=0.3))
    rng = np.random.default_rng(3)
    labels = [builder.video_text(rng).aligned for _ in range(2000)]
    assert abs(1 - np.mean(labels) - 0.3) < 0.04
    balanced = ExampleBuilder(videos, vocab, config(alignment_share=1.0, negative_prob=0.5))
    assert abs(np.mean([balanced.video_text(rng).aligned for _ in range(2000)]) - 0.5) < 0.04


def test_alignment_pairs_are_unmasked_and_masked_pairs_are_aligned(corpus):
    videos, vocab = corpus
    cfg = config(
        mask_prob=0.4,
        alignment_share=0.5,
        negative_prob=0.5,
        mask_alignment_pairs=False,
        regime_mix=(0, 0, 1),
    )
    b = PretrainBatches(ExampleBuilder(videos, vocab, cfg), batch_size=64, seed=5).batch(0)
    align = b["align_labels"]  # [B]: 1 aligned, 0 misaligned, IGNORE_INDEX for the masked-prediction pairs
    real = b["mlm_labels"] != IGNORE_INDEX
    rows = b["mlm_positions"][real] // b["input_ids"].shape[1]  # the example of each predicted word
    masked_rows = (b["input_ids"] == vocab.mask_id).any(dim=1)  # [B]
    assert (align == 0).sum() >= 8 and (align == 1).sum() >= 8 and (align == IGNORE_INDEX).sum() >= 16
    assert (align[rows] == IGNORE_INDEX).all() and len(rows) > 50  # words are predicted on MLM pairs only
    assert not masked_rows[align != IGNORE_INDEX].any()  # the classifier never sees [MASK]: no shortcut
    assert masked_rows[align == IGNORE_INDEX].float().mean() > 0.9


def test_the_nsp_style_recipe_masks_every_pair(corpus):
    videos, vocab = corpus
    cfg = config(
        mask_prob=0.4, alignment_share=1.0, negative_prob=0.5, mask_alignment_pairs=True, regime_mix=(0, 0, 1)
    )
    b = PretrainBatches(ExampleBuilder(videos, vocab, cfg), batch_size=64, seed=5).batch(0)
    align = b["align_labels"]
    real = b["mlm_labels"] != IGNORE_INDEX
    rows = b["mlm_positions"][real] // b["input_ids"].shape[1]
    assert (align != IGNORE_INDEX).all() and (align == 0).sum() >= 16
    assert (align[rows] == 0).sum() > 20  # misaligned pairs' words are predicted too


def test_alignment_starts_at_its_step_and_earlier_batches_are_unchanged(corpus):
    videos, vocab = corpus
    phased = config(alignment_share=1.0, negative_prob=0.5, regime_mix=(0, 0, 1), alignment_from_step=10)
    never = config(alignment_share=0.0, regime_mix=(0, 0, 1))
    a = PretrainBatches(ExampleBuilder(videos, vocab, phased), batch_size=32, seed=5, grad_accum=2)
    b = PretrainBatches(ExampleBuilder(videos, vocab, never), batch_size=32, seed=5, grad_accum=2)
    for index in (0, 19):  # micro-batches of steps 0 and 9: the first phase, as if alignment never came
        assert (a.batch(index)["align_labels"] == IGNORE_INDEX).all()
        assert all(torch.equal(a.batch(index)[k], b.batch(index)[k]) for k in a.batch(index))
    later = a.batch(20)["align_labels"]  # step 10: every pair trains alignment, some misaligned
    assert (later != IGNORE_INDEX).all() and 4 <= int((later == 0).sum()) <= 28


def test_negatives_come_from_other_times_and_other_videos(corpus):
    videos, vocab = corpus
    rng = np.random.default_rng(4)
    builder = ExampleBuilder(
        videos, vocab, config(negative_same_video=1.0, max_concat_sentences=1, max_subsample=1)
    )
    span = range(0, 1)
    same = builder._negative_words(rng, 0, span)
    others = {tuple(w) for s, w in enumerate(videos[0].video_words) if s != 0}
    assert tuple(same) in others  # another sentence of the same video
    builder = ExampleBuilder(videos, vocab, config(negative_same_video=0.0, max_concat_sentences=1))
    other = builder._negative_words(rng, 0, span)
    assert any(tuple(other) == tuple(w) for v in videos[1:] for w in v.video_words)


def test_subsampling_rates_and_concatenation_stay_in_range(corpus):
    videos, vocab = corpus
    builder = ExampleBuilder(videos, vocab, config(max_subsample=5, max_concat_sentences=3))
    rng = np.random.default_rng(5)
    words = np.arange(100)
    rates = set()
    for _ in range(300):
        out = builder._subsample(rng, words, 100)
        rate = int(out[1] - out[0])
        assert 1 <= rate <= 5 and (np.diff(out) == rate).all() and out[0] < rate
        rates.add(rate)
        assert 1 <= len(builder._span(rng, 0, 0)) <= 3
    assert rates == {1, 2, 3, 4, 5}


def test_batches_are_a_function_of_seed_and_position(corpus):
    videos, vocab = corpus
    a = PretrainBatches(ExampleBuilder(videos, vocab, config()), 4, seed=7)
    b = PretrainBatches(ExampleBuilder(videos, vocab, config()), 4, seed=7)
    stream = iter(a)
    first = [next(stream) for _ in range(3)]
    b.load_state_dict({"position": 2})
    assert torch.equal(next(iter(b))["input_ids"], first[2]["input_ids"])
    assert a.state_dict() == {"position": 3}
    other_rank = PretrainBatches(ExampleBuilder(videos, vocab, config()), 4, seed=7, rank=1).batch(0)
    assert not torch.equal(other_rank["input_ids"], first[0]["input_ids"])


def test_worker_processes_give_the_same_batches(corpus):
    videos, vocab = corpus
    serial = PretrainBatches(ExampleBuilder(videos, vocab, config()), 4, seed=3)
    parallel = PretrainBatches(ExampleBuilder(videos, vocab, config()), 4, seed=3, num_workers=1)
    for x, y in zip([serial.batch(i) for i in range(3)], iter(parallel)):
        assert all(torch.equal(x[k], y[k]) for k in x)


def test_synthetic_benchmark_batch_is_full_and_well_formed():
    b = synthetic_batch(16, 32, text_vocab=100, visual_vocab=36)
    assert b["input_ids"].shape == (16, 32) and bool(b["attention_mask"].all())
    vocab = JointVocab(100, 36)
    joint = b["regime"] == JOINT
    assert ((b["input_ids"] == vocab.next_id).sum(1) == joint.long()).all()
    assert set(b["align_labels"][joint].tolist()) <= {0, 1}


def test_bad_token_files_are_refused_with_the_file_named(tmp_path):
    good = write_tokens(tmp_path / "a" / "tokens.jsonl", num_videos=2)
    with pytest.raises(DataError, match="outside \\[0, 16\\).*another vocabulary"):
        read_token_file(good, 16)  # made for 36 visual words, read as 16
    (tmp_path / "a" / "manifest.json").write_text(json.dumps({"config": {"vocab": {"k": 4, "depth": 2}}}))
    with pytest.raises(DataError, match="4\\^2 = 16 visual words.*expects 36"):
        read_token_file(good.parent, 36)
    truncated = tmp_path / "t.jsonl"
    truncated.write_text(good.read_text()[:-40], encoding="utf-8")
    with pytest.raises(DataError, match="t.jsonl:2: not valid JSON"):
        read_token_file(truncated, 36)
    with pytest.raises(DataError, match="no videos of subset training"):
        read_token_file(
            write_tokens(tmp_path / "val.jsonl", 2, subset="validation"), 36, subsets=("training",)
        )
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        read_token_file(tmp_path / "empty.jsonl", 36)
    with pytest.raises(DataError, match="not found"):
        read_token_file(tmp_path / "missing.jsonl", 36)


def _record(**changes) -> dict:
    """A valid tokens.jsonl record for 36 visual words, with `changes` applied."""
    record = {
        "video_id": "v000",
        "subset": "training",
        "words": [0, 7, 35],
        "sentences": [{"text": "we cut the egg", "start": 0.0, "end": 3.0, "video_words": [0, 7]}],
    }
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (5, "expected a JSON object \\(one video per line\\), got int"),
        ([_record()], "expected a JSON object .*got list"),
        (None, "expected a JSON object .*got NoneType"),
        (_record(video_id=12), "video_id 12 is not a string"),
        (_record(subset=["training"]), "subset \\['training'\\] is not a string"),
        (_record(words=None), "words is not a list of visual words"),
        (_record(words=[1, 2.0]), "words: visual word 2.0 is not an integer"),
        (_record(words=[1, True]), "words: visual word True is not an integer"),
        (_record(words=[1, 36]), "words: visual word 36 is outside \\[0, 36\\)"),
        (_record(sentences={"text": "x"}), "sentences is not a list"),
        (_record(sentences=["we cut"]), "sentence 0 is not a JSON object"),
        (_record(sentences=[{"text": "x"}]), "sentence 0 lacks 'text' or 'video_words'"),
        (_record(sentences=[{"text": None, "video_words": [1]}]), "sentence 0 text None is not a string"),
        (_record(sentences=[{"text": 5, "video_words": [1]}]), "sentence 0 text 5 is not a string"),
        (
            _record(sentences=[{"text": "x", "video_words": [1.5]}]),
            "sentence 0 video_words: visual word 1.5 is not an integer",
        ),
        (_record(sentences=[{"text": "x", "video_words": 3}]), "sentence 0 video_words is not a list"),
        (
            _record(sentences=[{"text": "x", "video_words": [-1]}]),
            "sentence 0 video_words: visual word -1 is outside",
        ),
    ],
)
def test_malformed_token_records_name_the_file_and_line(tmp_path, record, message):
    path = tmp_path / "tokens.jsonl"
    path.write_text(json.dumps(_record()) + "\n\n" + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"tokens.jsonl:3: {message}"):
        read_token_file(path, K**DEPTH, subsets=None)
    path.write_text(json.dumps(_record()) + "\n", encoding="utf-8")
    assert [r["video_id"] for r in read_token_file(path, K**DEPTH)] == ["v000"]  # the valid record reads
