"""Generation, forecasting, retrieval, classification, VideoBERT features and the task data layer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from vbert.bert.model import BertConfig
from vbert.bert.wordpiece import SPECIAL_TOKENS
from vbert.core.stages import code_digest
from vbert.errors import DataError, VbertError
from vbert.pretraining.joint_vocab import JointVocab
from vbert.pretraining.videobert import VideoBertForPretraining
from vbert.tasks.action_table import chance_row, probe_row, subset_token_file
from vbert.tasks.classification import nearest_neighbours, precision_at_k, recipe_probe
from vbert.tasks.data import fill_labels, label_sets, load_segments, load_videos
from vbert.tasks.embeddings import alignment_scores, caption_features, pooled_video
from vbert.tasks.forecasting import forecast, forecasting_examples, word_accuracy
from vbert.tasks.generation import text_to_video
from vbert.tasks.retrieval import candidate_pool, label_reader_recall, recall_at_k, retrieval_scores, windows

WORDS = [
    "now",
    "let",
    "'",
    "s",
    "me",
    "show",
    "you",
    "how",
    "to",
    "the",
    "and",
    "then",
    ",",
    "cut",
    "tomato",
    "egg",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from vbert.bert.wordpiece import load_tokenizer

    folder = tmp_path_factory.mktemp("vocab")
    (folder / "vocab.txt").write_text("\n".join([*SPECIAL_TOKENS, *WORDS]) + "\n", encoding="utf-8")
    return load_tokenizer(folder)


@pytest.fixture(scope="module")
def model_and_vocab(tokenizer):
    torch.manual_seed(0)
    vocab = JointVocab(text_size=len(tokenizer), visual_size=6)
    config = BertConfig(
        vocab_size=vocab.size,
        hidden_size=16,
        num_layers=1,
        num_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )
    return VideoBertForPretraining(config, vocab).eval(), vocab


def test_recall_at_k_by_hand() -> None:
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.7], [0.3, 0.3, 0.1]])
    assert recall_at_k(scores, [0, 1, 1], ks=(1, 2, 3)) == pytest.approx(
        {"R@1": 200 / 3, "R@2": 100.0, "R@3": 100.0}
    )
    with pytest.raises(VbertError):
        recall_at_k(np.zeros((2, 3)), [0])


def test_windows_cover_the_video() -> None:
    assert windows([1, 2, 3], 5) == [[1, 2, 3]]
    got = windows(list(range(10)), 4)
    assert got[0] == [0, 1, 2, 3] and got[-1] == [6, 7, 8, 9] and all(len(w) == 4 for w in got)


def test_retrieval_takes_the_best_window(model_and_vocab, tokenizer) -> None:
    model, vocab = model_and_vocab
    videos = [[0, 1, 2, 3, 4, 5, 0, 1], [2, 2]]
    scores = retrieval_scores(
        model, tokenizer, vocab, ["cut the tomato", "egg"], videos, max_len=32, window=4
    )
    assert scores.shape == (2, 2)
    per_window = alignment_scores(
        model, tokenizer, vocab, [("egg", w) for w in windows(videos[0], 4)], max_len=32
    )
    assert scores[1, 0] == pytest.approx(per_window.max(), abs=1e-6)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_retrieval_in_chunks_equals_one_pass(model_and_vocab, tokenizer) -> None:
    model, vocab = model_and_vocab
    videos = [[0, 1, 2, 3, 4, 5, 0, 1], [2, 2], [5, 4, 3]]
    sentences = ["cut the tomato", "egg", "crack the egg into the bowl", "salt"]
    whole = retrieval_scores(model, tokenizer, vocab, sentences, videos, max_len=32, window=4)
    # 5 windows in all: 1 pair per chunk still means one sentence at a time, 7 pairs means one, 10 two
    for pairs_per_chunk in (1, 7, 10):
        chunked = retrieval_scores(
            model, tokenizer, vocab, sentences, videos, max_len=32, window=4, pairs_per_chunk=pairs_per_chunk
        )
        assert np.allclose(chunked, whole, atol=1e-6)
    direct = alignment_scores(
        model, tokenizer, vocab, [(s, v) for s in sentences for v in videos[1:]], max_len=32
    )
    assert np.allclose(whole[:, 1:].ravel(), direct, atol=1e-6)  # one-window videos score their only window
    assert retrieval_scores(model, tokenizer, vocab, [], videos, max_len=32).shape == (0, 3)


def test_label_reader_recall_by_hand() -> None:
    # three candidates share label a (1/3 at k=1), one is alone (1); at k=2: 2/3 and 1
    got = label_reader_recall(["a", "a", "b", "a"], ks=(1, 2, 3))
    assert got == pytest.approx(
        {"R@1": 100 * (3 / 3 + 1) / 4, "R@2": 100 * (3 * 2 / 3 + 1) / 4, "R@3": 100.0}
    )
    # a reader of labels equals recall@k of scores that are 1 on the same label, 0 elsewhere (ties at random)
    labels = np.random.default_rng(0).integers(0, 5, 40).tolist()
    same = (np.array(labels)[:, None] == np.array(labels)[None, :]).astype(float)
    trials = [
        recall_at_k(same + 1e-9 * rng.random(same.shape), range(40), ks=(1, 3))
        for rng in (np.random.default_rng(s) for s in range(200))
    ]
    mean = {k: np.mean([t[k] for t in trials]) for k in ("R@1", "R@3")}
    assert mean == pytest.approx(label_reader_recall(labels, ks=(1, 3)), abs=2.0)
    with pytest.raises(VbertError, match="at least one"):
        label_reader_recall([])


def test_candidate_pool_is_a_seeded_sample_above_the_cap() -> None:
    assert candidate_pool(5, 100, seed=0) == [0, 1, 2, 3, 4]
    assert candidate_pool(500, 0, seed=0) == list(range(500))
    pool = candidate_pool(500, 100, seed=3)
    assert len(pool) == len(set(pool)) == 100 and pool == sorted(pool) and 0 <= pool[0] and pool[-1] < 500
    assert pool == candidate_pool(500, 100, seed=3) and pool != candidate_pool(500, 100, seed=4)
    with pytest.raises(VbertError, match="retrieval_max_videos"):
        candidate_pool(5, -1, seed=0)


def test_caption_features_average_video_and_slot_outputs(model_and_vocab, tokenizer) -> None:
    model, vocab = model_and_vocab
    feats = caption_features(model, tokenizer, vocab, [[1, 2, 3], [4]], max_len=32)
    assert feats.shape == (2, 32)
    text = tokenizer(
        "now let's [MASK] the [MASK] to the [MASK], and then [MASK] the [MASK]", add_special_tokens=False
    )["input_ids"]
    ids = [vocab.cls_id, *text, vocab.next_id, vocab.text_size + 4, vocab.sep_id]
    types = [0] * (len(text) + 1) + [1, 1, 1]
    hidden = model.bert(torch.tensor([ids]), torch.tensor([types]), None)[0]
    slots = [i for i, t in enumerate(ids) if t == vocab.mask_id]
    assert len(slots) == 5
    assert np.allclose(feats[1, :16], hidden[len(text) + 2].detach().numpy(), atol=1e-5)
    assert np.allclose(feats[1, 16:], hidden[slots].mean(0).detach().numpy(), atol=1e-5)
    with pytest.raises(VbertError, match="no \\[MASK\\]"):
        caption_features(model, tokenizer, vocab, [[1]], template="no slots here")


def test_pooled_video_averages_windows(model_and_vocab) -> None:
    model, vocab = model_and_vocab
    long = list(range(6)) * 10  # 60 words, windows of 30 at max_len 32
    pooled = pooled_video(model, vocab, [long, long[:30], long[30:]], max_len=32)
    assert pooled.shape == (3, 16)
    assert np.allclose(pooled[0], (pooled[1] + pooled[2]) / 2, atol=1e-5)
    with pytest.raises(VbertError, match="no visual words"):
        pooled_video(model, vocab, [[]], max_len=32)


class ScriptedVideoBert(nn.Module):
    """A stand-in VideoBERT whose MLM head follows a script, so the words a task writes can be checked.

    At each position it predicts the visual word after its left neighbour's ((w + 1) mod K) or, right
    after [>], the number of text tokens mod K. A text token and [>] always score higher, so only a fill
    restricted to the visual words returns the scripted word; and since each prediction reads the word
    to its left, only a left-to-right fill that writes each word back gets the whole sequence right.
    """

    def __init__(self, vocab: JointVocab, max_len: int = 32) -> None:
        super().__init__()
        self.vocab = vocab
        self.config = SimpleNamespace(max_position_embeddings=max_len)
        self.anchor = nn.Parameter(torch.zeros(1))  # a parameter: the tasks read the model's device from it
        self.mlm = SimpleNamespace(mlm_logits=self.logits)
        self.seen: list[list[int]] = []  # every sequence the encoder was given

    def bert(self, ids: torch.Tensor, types: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """hidden [1, L, 2]: each position's left neighbour and the number of text tokens."""
        self.seen.append(ids[0].tolist())
        left = torch.cat([torch.tensor([-1]), ids[0, :-1]])  # [L]
        text = int((types[0] == 0).sum()) - 1  # the [CLS] has type 0 too
        return torch.stack([left, torch.full_like(left, text)], dim=-1)[None].float()

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        left, text = int(hidden[0]), int(hidden[1])
        vocab = self.vocab
        if vocab.text_size <= left < vocab.next_id:
            word = (left - vocab.text_size + 1) % vocab.visual_size
        else:
            word = text % vocab.visual_size if left == vocab.next_id else 0
        out = torch.zeros(vocab.size)  # [V]
        out[vocab.text_size + word] = 1.0
        out[vocab.text_low] = out[vocab.next_id] = 2.0  # higher, but not visual words
        return out


def test_text_to_video_writes_the_words_the_model_predicts_left_to_right(tokenizer) -> None:
    vocab = JointVocab(text_size=len(tokenizer), visual_size=6)
    model = ScriptedVideoBert(vocab)
    text = tokenizer("cut the tomato", add_special_tokens=False)["input_ids"]
    assert len(text) == 3
    words = text_to_video(model, tokenizer, vocab, "cut the tomato", num_words=5)
    assert words == [3, 4, 5, 0, 1]  # 3 text tokens, then each word after the one before
    masks, filled = [vocab.mask_id] * 5, vocab.visual_ids(words).tolist()
    assert model.seen[0] == [vocab.cls_id, *text, vocab.next_id, *masks, vocab.sep_id]
    assert model.seen[-1] == [vocab.cls_id, *text, vocab.next_id, *filled[:4], vocab.mask_id, vocab.sep_id]
    assert text_to_video(model, tokenizer, vocab, "cut the tomato and the egg", num_words=2) == [0, 1]
    with pytest.raises(VbertError, match="non-empty sentence"):
        text_to_video(model, tokenizer, vocab, "   ", num_words=3)
    with pytest.raises(VbertError, match="exceeds the model's 32 positions"):
        text_to_video(model, tokenizer, vocab, "cut the tomato", num_words=30)


def test_forecast_continues_the_most_recent_context_that_fits(tokenizer) -> None:
    vocab = JointVocab(text_size=len(tokenizer), visual_size=6)
    model = ScriptedVideoBert(vocab)
    context = [2, 3, 4] * 40  # 120 words: only the last 32 - 2 - 4 = 26 fit beside 4 masks
    assert forecast(model, vocab, context, num_words=4, max_len=32) == [5, 0, 1, 2]
    kept = vocab.visual_ids(context[-26:]).tolist()
    assert model.seen[0] == [vocab.cls_id, *kept, *[vocab.mask_id] * 4, vocab.sep_id]  # video only
    assert forecast(model, vocab, [1], num_words=2, max_len=32) == [2, 3]
    with pytest.raises(VbertError, match="context"):
        forecast(model, vocab, [], num_words=2, max_len=32)
    with pytest.raises(VbertError, match=r"num_words must be in \[1, 29\]"):
        forecast(model, vocab, [1], num_words=30, max_len=32)


def test_text_to_video_and_forecast_run_on_a_real_model(model_and_vocab, tokenizer) -> None:
    model, vocab = model_and_vocab
    words = text_to_video(model, tokenizer, vocab, "cut the tomato", num_words=5)
    assert len(words) == 5 and all(0 <= w < vocab.visual_size for w in words)
    assert words == text_to_video(model, tokenizer, vocab, "cut the tomato", num_words=5)  # greedy
    future = forecast(model, vocab, list(range(6)) * 20, num_words=4, max_len=32)
    assert len(future) == 4 and all(0 <= w < vocab.visual_size for w in future)


def test_word_accuracy() -> None:
    assert word_accuracy([[1, 2, 3], [4]], [[1, 0, 3], [4, 5]]) == pytest.approx(75.0)


def _write_tokens(folder: Path) -> Path:
    def seg(i, verb, noun, words):
        return {
            "id": i,
            "start": 2.0 * i,
            "end": 2.0 * i + 1.5,
            "sentence": f"{verb} the {noun}",
            "verb": verb,
            "noun": noun,
            "video_words": words,
        }

    records = [
        {
            "video_id": f"v{n}",
            "subset": "training" if n < 4 else "validation",
            "recipe_type": "r" + str(n % 2),
            "words": [n % 6, 1, 2, 3],
            "sentences": [],
            "segments": [
                seg(0, "cut", "tomato", [n % 6]),
                seg(1, "crack", "egg", [1, 2]),
                seg(2, "cut", "egg", []),
            ],
        }
        for n in range(6)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokens.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder


def test_token_file_segments_and_subsets(tmp_path: Path) -> None:
    folder = _write_tokens(tmp_path / "tokens")
    val = load_segments(folder, ("validation",))
    assert len(val) == 4 and {s.video_id for s in val} == {"v4", "v5"}  # segments without words are left out
    assert label_sets(val) == (["crack", "cut"], ["egg", "tomato"])
    videos = load_videos(folder, None)
    assert len(videos) == 6 and videos[0].segments[1].index == 1
    examples = forecasting_examples(videos)
    assert len(examples) == 6 and examples[0]["next"].verb == "crack" and examples[0]["context"] == [0]
    half = subset_token_file(folder, 0.5, tmp_path / "half")
    assert len(load_videos(half, ("training",))) == 2 and len(load_videos(half, ("validation",))) == 2
    with pytest.raises(DataError, match="no video of subset testing"):
        load_videos(folder, ("testing",))


def test_token_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.jsonl"
    bad.write_text(
        json.dumps({"video_id": "a", "words": [], "segments": [{"start": 0}]}) + "\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match="tokens.jsonl.*segment 0 lacks"):
        load_segments(bad, None)
    bad.write_text('{"video_id": "a", "words": [1]\n', encoding="utf-8")
    with pytest.raises(DataError, match="tokens.jsonl"):
        load_segments(bad, None)


def test_fill_labels_from_captions(tmp_path: Path) -> None:
    segments = load_segments(_write_tokens(tmp_path / "t"), None)
    unlabeled = [s.__class__(**{**s.__dict__, "verb": None, "noun": None}) for s in segments]
    filled = fill_labels(unlabeled, verbs=["cut", "crack"], nouns=["tomato", "egg"])
    assert [(s.verb, s.noun) for s in filled] == [(s.verb, s.noun) for s in segments]
    with pytest.raises(DataError, match="label sets"):
        fill_labels(unlabeled)


def test_probes_on_separable_data() -> None:
    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    y = rng.integers(0, 3, 90)
    x = np.eye(3)[y] * 5 + rng.standard_normal((90, 3)) * 0.1
    result = recipe_probe(x[:60], [names[i] for i in y[:60]], x[60:], [names[i] for i in y[60:]])
    assert result["accuracy"] == 100.0 and result["confusion"].trace() == 30
    neighbours = nearest_neighbours(x, k=3)
    assert neighbours.shape == (90, 3) and precision_at_k(neighbours, [names[i] for i in y]) == 100.0
    segs = [type("S", (), {"verb": names[i], "noun": names[2 - i]})() for i in y]
    row = probe_row(x[:60], segs[:60], x[60:], segs[60:], names, names, ks=(1, 2))
    assert row["verb top-1"] == 100.0 and row["noun top-1"] == 100.0
    assert chance_row(names, names + ["d"], ks=(1,)) == pytest.approx(
        {"verb top-1": 100 / 3, "noun top-1": 25.0}
    )
    with pytest.raises(VbertError, match="two recipe types"):
        recipe_probe(x[:5], ["a"] * 5, x[5:10], ["a"] * 5)


def test_youcook2_style_segments_get_labels_from_captions(tmp_path: Path) -> None:
    from vbert.tasks.data import with_labels

    segments = load_segments(_write_tokens(tmp_path / "t"), None)
    bare = [s.__class__(**{**s.__dict__, "verb": None, "noun": None}) for s in segments]
    train, val, verbs, nouns = with_labels(bare[:8], bare[8:])
    assert verbs == ["crack", "cut"] and nouns == ["egg", "tomato"]
    assert [(s.verb, s.noun) for s in train + val] == [(s.verb, s.noun) for s in segments]


def test_artifacts_given_explicitly(tmp_path: Path) -> None:
    from vbert import load_config
    from vbert.tasks.artifacts import Artifacts

    folder = _write_tokens(tmp_path / "t")
    artifacts = Artifacts(load_config("tiny"), tokens=folder, pretrained=None)
    assert artifacts.tokens() == folder
    with pytest.raises(DataError, match="pretrained folder given does not exist"):
        Artifacts(load_config("tiny"), pretrained=tmp_path / "nope")
    with pytest.raises(DataError, match="run the pipeline's 'pretrain' stage"):
        Artifacts(load_config("tiny"), run_dir=tmp_path).pretrained()


def test_given_tokens_are_never_paired_with_the_presets_own_folders(tmp_path, monkeypatch) -> None:
    from vbert import load_config
    from vbert.core.manifest import file_sha256, write_manifest
    from vbert.tasks.artifacts import Artifacts

    monkeypatch.setenv("VBERT_CACHE", str(tmp_path / "cache"))
    config = load_config("tiny")
    elsewhere = _write_tokens(tmp_path / "elsewhere")
    artifacts = Artifacts(config, tokens=elsewhere)
    for method, option in (("features", "--features"), ("pretrained", "--model"), ("videos", "videos")):
        with pytest.raises(DataError, match=f"cannot be the preset's own: give it with {option}"):
            getattr(artifacts, method)()
    assert not (tmp_path / "cache").exists()  # nothing of the preset was built

    # Tokens inside a `vbert run` folder: the other stages are read from that folder.
    run = tmp_path / "run"
    (run / "features").mkdir(parents=True)
    (run / "pipeline.json").write_text("{}", encoding="utf-8")
    tokens = _write_tokens(run / "tokenize")
    in_run = Artifacts(config, tokens=tokens)
    assert in_run.features() == run / "features"
    with pytest.raises(DataError, match="run the pipeline's 'pretrain' stage first"):
        in_run.pretrained()
    (run / "pretrain").mkdir()
    from_model = Artifacts(config, pretrained=run / "pretrain")  # a run's model brings the run's tokens
    assert (from_model.tokens(), from_model.features()) == (run / "tokenize", run / "features")

    # The text-only BERT of given tokens: trained on them once (cached by their hash), and refused
    # when the model given was pretrained on other tokens.
    built: list[Path] = []

    def fake_pretraining(cfg, data, folder, **kwargs):
        built.append(Path(data))
        write_manifest(folder, "pretrain", cfg.to_dict(), inputs={"tokens": "x"})

    monkeypatch.setattr("vbert.tasks.artifacts.run_pretraining", fake_pretraining)
    model = tmp_path / "model"
    write_manifest(model, "pretrain", {}, inputs={"tokens": file_sha256(elsewhere / "tokens.jsonl")})
    first = Artifacts(config, tokens=elsewhere, pretrained=model).text_only()
    assert Artifacts(config, tokens=elsewhere, pretrained=model).text_only() == first
    assert built == [elsewhere] and first.parent == tmp_path / "cache"
    real_digest = code_digest
    monkeypatch.setattr("vbert.tasks.artifacts.code_digest", lambda names: real_digest(names) + "+")
    again = Artifacts(config, tokens=elsewhere, pretrained=model).text_only()  # other training code
    assert again != first and built == [elsewhere, elsewhere]
    monkeypatch.setattr("vbert.tasks.artifacts.code_digest", real_digest)
    write_manifest(model, "pretrain", {}, inputs={"tokens": "0" * 64})
    with pytest.raises(DataError, match="pretrained on other tokens.*--text-model"):
        Artifacts(config, tokens=elsewhere, pretrained=model).text_only()


def test_the_text_only_bert_trains_on_as_many_masked_sentences_as_videobert() -> None:
    from vbert.config import load_config
    from vbert.tasks.artifacts import masked_text_steps, text_only_config

    tiny = load_config(
        "tiny"
    ).pretrain  # 32 video-text pairs a step, all masked for 900 steps, then a quarter
    assert masked_text_steps(tiny) == 900 + round(1500 * 0.25)
    # the paper's mix: 8 text-only and 16 video-text of 32 a step, every pair masked (alignment pairs too)
    paper_mix = dataclasses.replace(tiny, regime_mix=(0.25, 0.25, 0.5), mask_alignment_pairs=True)
    assert masked_text_steps(paper_mix) == 2400 * 24 // 32
    # alignment pairs left whole from the start: only the text-only examples and the other pairs count
    whole = dataclasses.replace(
        paper_mix, mask_alignment_pairs=False, alignment_share=0.5, alignment_from_step=0
    )
    assert masked_text_steps(whole) == 2400 * (8 + 16 * 0.5) // 32
    # an alignment phase after the last step leaves every pair masked
    assert masked_text_steps(dataclasses.replace(tiny, alignment_from_step=10_000)) == 2400
    config = text_only_config(load_config("tiny"))
    assert (config.pretrain.steps, config.pretrain.regime_mix, config.pretrain.alignment_share) == (
        1275,
        (1, 0, 0),
        0,
    )


def test_exemplar_clips_pick_the_nearest_clip_and_refuse_words_of_another_vocabulary() -> None:
    from vbert.tasks.generation import exemplar_clips

    class Store:
        def clips_of(self, video_id):
            vectors = np.array([[0.0, 0.0], [1.0, 1.0], [0.9, 1.0]], dtype=np.float32)  # [3 clips, D]
            return vectors, np.array([0.0, 1.5, 3.0]), np.array([1.5, 3.0, 4.5])

    centroids = np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)  # 2 words
    records = [{"video_id": "v", "words": [0, 1, 1]}]
    assert exemplar_clips(records, Store(), centroids) == {0: ("v", 0.0, 1.5), 1: ("v", 1.5, 3.0)}
    with pytest.raises(DataError, match="visual word 5 is outside a vocabulary of 2 words"):
        exemplar_clips([{"video_id": "v", "words": [0, 5, 1]}], Store(), centroids)


def test_label_baselines_repeat_the_step_or_take_its_most_common_successor() -> None:
    from vbert.tasks.data import EvalSegment, EvalVideo
    from vbert.tasks.forecasting import label_baselines, next_step_counts

    def video(*steps: str) -> EvalVideo:
        segs = [
            EvalSegment("v", "training", "r", i, i + 1, s, *s.split(), [1], i) for i, s in enumerate(steps)
        ]
        return EvalVideo("v", "training", "r", [1] * len(steps), segs)

    train = [
        video("crack egg", "whisk egg", "fry egg"),
        video("crack egg", "whisk egg"),
        video("crack egg", "pour milk"),
    ]
    assert next_step_counts(train)[("crack", "egg")] == {("whisk", "egg"): 2, ("pour", "milk"): 1}
    val = video("crack egg", "whisk egg", "cut bread", "whisk egg")
    examples = [{"current": a, "next": b} for a, b in zip(val.segments, val.segments[1:])]
    rows = label_baselines(examples, train)
    # most common next: crack->whisk (right), whisk->fry (wrong), cut bread unseen -> overall most common (whisk egg: right)
    assert rows["most common next step (training statistics)"] == pytest.approx(
        {"verb top-1": 200 / 3, "noun top-1": 200 / 3}
    )
    # repeat: crack egg->whisk egg (noun right), whisk egg->cut bread (none), cut bread->whisk egg (none)
    assert rows["repeat the current step (labels)"] == pytest.approx(
        {"verb top-1": 0.0, "noun top-1": 100 / 3}
    )


def test_generation_is_measured_by_the_labels_of_the_words_it_writes(tokenizer) -> None:
    from vbert.tasks.data import EvalSegment
    from vbert.tasks.generation import generation_table, purity, word_labels

    def seg(verb: str, noun: str, words: list[int]) -> EvalSegment:
        return EvalSegment("v", "training", "r", 0, 1, f"{verb} the {noun}", verb, noun, words)

    train = [seg("cut", "tomato", [3, 3, 4]), seg("cut", "egg", [4, 5]), seg("crack", "egg", [5, 5])]
    verbs, nouns = word_labels(train, "verb"), word_labels(train, "noun")
    assert verbs == {3: "cut", 4: "cut", 5: "crack"} and nouns[3] == "tomato" and nouns[5] == "egg"
    assert purity([3, 4, 5, 0], verbs, "cut") == 0.5  # word 0 was never labelled: not the verb
    vocab = JointVocab(text_size=len(tokenizer), visual_size=6)
    val = [seg("cut", "tomato", [3, 3, 3])]
    rows = generation_table(
        ScriptedVideoBert(vocab), tokenizer, vocab, val, train, num_words=5, temperatures=(0.0,)
    )
    # the scripted model writes 3, 4, 5, 0, 1 for "cut the tomato": five distinct words, two of them cut's
    # and two tomato's (word 4 is once tomato, once egg: the first seen wins the tie)
    assert rows["greedy"] == {"distinct words": 5.0, "verb purity": 40.0, "noun purity": 40.0}
    assert rows["the segment's own words"] == {
        "distinct words": 1.0,
        "verb purity": 100.0,
        "noun purity": 100.0,
    }
    assert set(rows) == {"greedy", "the segment's own words", "random words"}
