"""Visual vocabulary and tokenization: fit on a features folder, refuse foreign features, token files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vbert.cli import main as cli_main
from vbert.config import load_config
from vbert.core.manifest import manifest_hash, read_manifest, write_manifest
from vbert.data.dataset import Narration, Segment, VideoDataset, VideoRecord
from vbert.errors import ConfigError, DataError
from vbert.features.store import FeatureWriter
from vbert.visual_words.token_file import read_token_file
from vbert.visual_words.tokenize import clips_in_span, tokenize_features, video_sentences
from vbert.visual_words.vocab import VOCAB_FILE, fit_vocab, load_vocab

DIM = 8


def tiny_config(**vocab):
    config = load_config("tiny")
    config.vocab.k, config.vocab.depth = 3, 2
    for key, value in vocab.items():
        setattr(config.vocab, key, value)
    return config


def clip_times(n: int) -> tuple[list[float], list[float]]:
    starts = [1.5 * i for i in range(n)]
    return starts, [s + 1.5 for s in starts]


def make_features(folder, videos: dict[str, int], dim: int = DIM, seed: int = 0, shuffle: str | None = None):
    """A features folder with `videos` {id: clips}; clips near 9 well-separated centres; a manifest."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(9, dim)) * 5
    writer = FeatureWriter(folder, dim=dim, shard_size=64)
    for video_id, n in videos.items():
        vectors = centres[rng.integers(0, 9, n)] + 0.1 * rng.normal(size=(n, dim))
        starts, ends = clip_times(n)
        if video_id == shuffle:  # stored out of time order: tokenization must sort
            perm = rng.permutation(n)
            vectors, starts, ends = vectors[perm], [starts[i] for i in perm], [ends[i] for i in perm]
        writer.add(video_id, vectors.astype(np.float32), starts, ends)
    writer.flush()
    write_manifest(folder, "extract", {"features": {"extractor": "test", "dim": dim}})
    return folder


def narration(sentences: list[tuple[float, float, str]]) -> Narration:
    """Word-level narration: each sentence's words spread evenly over its span."""
    words, starts, ends = [], [], []
    for start, end, text in sentences:
        pieces = text.split()
        step = (end - start) / len(pieces)
        for j, w in enumerate(pieces):
            words.append(w)
            starts.append(start + j * step)
            ends.append(start + (j + 1) * step)
    return Narration(words, starts, ends)


def make_dataset() -> VideoDataset:
    narrated = VideoRecord(
        "narrated",
        None,
        30.0,
        "training",
        "salad",
        segments=[
            Segment(0, 0.0, 6.0, "cut the tomato", "cut", "tomato"),
            Segment(1, 9.0, 9.4, "add salt", "add", "salt"),
        ],
        narration=narration([(0.2, 4.4, "now we cut the tomato"), (9.0, 13.9, "then a little salt goes in")]),
    )
    silent = VideoRecord(
        "silent",
        None,
        60.0,
        "validation",
        "soup",
        segments=[Segment(0, 3.0, 12.0, "stir the soup", "stir", "soup")],
    )
    missing = VideoRecord("never_extracted", None, 10.0, "training", "soup")
    return VideoDataset({v.video_id: v for v in (narrated, silent, missing)})


def test_fit_vocab_writes_file_metadata_and_manifest(tmp_path):
    features = make_features(tmp_path / "features", {"a": 60, "b": 50})
    out = fit_vocab(features, tmp_path / "vocab", tiny_config(), sample_size=80)
    tree = load_vocab(out, features)
    assert (tree.k, tree.depth, tree.dim) == (3, 2, DIM)
    assert tree.metadata["features_hash"] == manifest_hash(features)
    manifest = read_manifest(out)
    assert manifest["complete"] and manifest["inputs"] == {"features": manifest_hash(features)}
    assert manifest["outputs"]["sample"] == 80 and manifest["outputs"]["vocab_size"] == 9
    assert manifest["config"]["vocab"]["sample_size"] == 80
    # 9 separated centres, 9 words: every word is used
    assert manifest["outputs"]["words_used"] == 9
    with pytest.raises(ConfigError, match="sample size"):
        fit_vocab(features, tmp_path / "vocab0", tiny_config(), sample_size=0)


def test_vocab_refused_for_features_of_another_dimension(tmp_path):
    features = make_features(tmp_path / "features", {"a": 40})
    vocab = fit_vocab(features, tmp_path / "vocab", tiny_config())
    other = make_features(tmp_path / "wide", {"a": 10}, dim=DIM + 4)
    with pytest.raises(DataError) as err:
        load_vocab(vocab, other)
    assert (
        str(vocab / VOCAB_FILE) in str(err.value)
        and f"{DIM}-d" in str(err.value)
        and "wide" in str(err.value)
    )
    with pytest.raises(DataError, match="wide"):
        tokenize_features(other, make_dataset(), vocab, tmp_path / "tokens", tiny_config())


def test_clips_in_span_uses_centres_and_falls_back_to_the_nearest_overlapping_clip():
    starts, ends = (np.array(t) for t in clip_times(6))  # centres 0.75, 2.25, 3.75, ...
    assert clips_in_span(starts, ends, 0.0, 3.0).tolist() == [0, 1]
    assert clips_in_span(starts, ends, 3.1, 3.3).tolist() == [2]  # too short for a centre
    assert clips_in_span(starts, ends, 20.0, 25.0).tolist() == []  # after the last clip
    assert clips_in_span(starts[:0], ends[:0], 0.0, 1.0).tolist() == []


def test_videos_without_narration_are_cut_into_segments_of_sixteen_words():
    words = np.arange(40)
    starts, ends = (np.array(t) for t in clip_times(40))
    sentences = video_sentences(None, words, starts, ends, 16)
    assert [len(s["video_words"]) for s in sentences] == [16, 16, 8]
    assert sentences[1]["video_words"] == list(range(16, 32)) and sentences[1]["text"] == ""
    assert sentences[2]["start"] == 48.0 and sentences[2]["end"] == 60.0


def test_tokenize_writes_words_sentences_segments_and_failures(tmp_path):
    features = make_features(
        tmp_path / "features", {"narrated": 20, "silent": 40, "orphan": 5}, shuffle="narrated"
    )
    config = tiny_config()
    vocab = fit_vocab(features, tmp_path / "vocab", config)
    out = tokenize_features(features, make_dataset(), vocab, tmp_path / "tokens", config)
    records = {r["video_id"]: r for r in read_token_file(out)}
    assert set(records) == {"narrated", "silent"}
    tree = load_vocab(vocab)
    from vbert.features.store import FeatureStore

    vectors, starts, _ = FeatureStore(features).clips_of("narrated")
    order = np.argsort(starts)
    expected = tree.assign(torch.from_numpy(vectors[order])).tolist()
    rec = records["narrated"]
    assert rec["words"] == expected and rec["clip_starts"] == sorted(rec["clip_starts"])
    assert (rec["subset"], rec["recipe_type"]) == ("training", "salad")
    first, second = rec["sentences"]
    assert first["text"] == "now we cut the tomato"
    assert first["video_words"] == expected[0:3]  # centres 0.75, 2.25, 3.75 lie in [0.2, 4.4]
    assert second["video_words"] == expected[6:9]  # centres 9.75, 11.25, 12.75 lie in [9.0, 13.9]
    seg0, seg1 = rec["segments"]
    assert (seg0["verb"], seg0["noun"], seg0["video_words"]) == ("cut", "tomato", expected[0:4])
    assert seg1["video_words"] == [expected[6]]  # a 0.4 s segment still gets its clip
    silent = records["silent"]
    assert [len(s["video_words"]) for s in silent["sentences"]] == [16, 16, 8]
    assert silent["segments"][0]["video_words"] == silent["words"][2:8]
    manifest = read_manifest(out)
    assert manifest["outputs"]["videos"] == 2 and manifest["outputs"]["clips"] == 60
    assert {f["item"] for f in manifest["failures"]} == {"never_extracted", "orphan"}
    assert manifest["config"]["vocab"]["k"] == 3


def test_token_file_reads_back_in_pretraining(tmp_path):
    from vbert.visual_words.token_file import read_token_file

    features = make_features(tmp_path / "features", {"narrated": 20, "silent": 40})
    config = tiny_config()
    vocab = fit_vocab(features, tmp_path / "vocab", config)
    out = tokenize_features(features, make_dataset(), vocab, tmp_path / "tokens", config)
    records = read_token_file(out, visual_size=9, subsets=None)
    assert {r["video_id"] for r in records} == {"narrated", "silent"}
    with pytest.raises(DataError, match="3\\^2 = 9"):
        read_token_file(out, visual_size=36, subsets=None)


def test_nearest_leaf_assignment_option(tmp_path):
    features = make_features(tmp_path / "features", {"narrated": 20, "silent": 40})
    config = tiny_config(assignment="nearest")
    vocab = fit_vocab(features, tmp_path / "vocab", config)
    out = tokenize_features(features, make_dataset(), vocab, tmp_path / "tokens", config)
    tree = load_vocab(vocab)
    rec = {r["video_id"]: r for r in read_token_file(out)}["silent"]
    from vbert.features.store import FeatureStore

    vectors, _, _ = FeatureStore(features).clips_of("silent")
    assert rec["words"] == tree.assign_nearest_leaf(torch.from_numpy(vectors)).tolist()


def test_cli_vocab_and_tokenize_on_youcook2_files(tmp_path, capsys):
    features = make_features(tmp_path / "features", {"v1": 30})
    annotations = {
        "database": {
            "v1": {
                "duration": 45.0,
                "subset": "training",
                "recipe_type": "soup",
                "annotations": [{"id": 0, "segment": [1.0, 10.0], "sentence": "stir soup"}],
            }
        }
    }
    (tmp_path / "ann.json").write_text(json.dumps(annotations), encoding="utf-8")
    captions = {"v1": {"text": ["stir the soup", "well done"], "start": [1.0, 20.0], "end": [4.0, 22.0]}}
    (tmp_path / "captions.json").write_text(json.dumps(captions), encoding="utf-8")
    common = ["--set", "vocab.k=3", "--set", "vocab.depth=2"]
    assert (
        cli_main(
            [
                "vocab",
                "--features",
                str(features),
                "--out",
                str(tmp_path / "vocab"),
                "--sample-size",
                "25",
                "--device",
                "cpu",
                *common,
            ]
        )
        == 0
    )
    assert "9 words (3^2)" in capsys.readouterr().out
    assert (
        cli_main(
            [
                "tokenize",
                "--features",
                str(features),
                "--vocab",
                str(tmp_path / "vocab"),
                "--data",
                str(tmp_path / "ann.json"),
                "--captions",
                str(tmp_path / "captions.json"),
                "--out",
                str(tmp_path / "tokens"),
                "--device",
                "cpu",
                *common,
            ]
        )
        == 0
    )
    (record,) = read_token_file(tmp_path / "tokens")
    assert [s["text"] for s in record["sentences"]] == ["stir the soup", "well done"]
    assert len(record["words"]) == 30 and record["segments"][0]["sentence"] == "stir soup"
    # a vocabulary of another feature dimension: one clear line, exit code 2
    wide = make_features(tmp_path / "wide", {"v1": 10}, dim=DIM + 1)
    assert (
        cli_main(
            [
                "tokenize",
                "--features",
                str(wide),
                "--vocab",
                str(tmp_path / "vocab"),
                "--data",
                str(tmp_path / "ann.json"),
                "--out",
                str(tmp_path / "t2"),
                *common,
            ]
        )
        == 2
    )
    assert "vocab.safetensors" in capsys.readouterr().err


def test_cached_vocab_and_tokens_build_once(tmp_path, monkeypatch):
    import vbert.visual_words.tokenize
    from vbert.core.stages import resolve
    from vbert.visual_words.tokenize import STAGE as TOKENIZE
    from vbert.visual_words.vocab import STAGE as VOCAB

    features = make_features(tmp_path / "features", {"narrated": 20, "silent": 40})
    data_root = tmp_path / "synthcook"
    data_root.mkdir()
    write_manifest(data_root, "generate", {"data": "test"})
    monkeypatch.setenv("VBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(vbert.visual_words.tokenize, "load_synthcook", lambda root: make_dataset())
    monkeypatch.setenv("VBERT_DEVICE", "cpu")
    config = tiny_config()
    given = {"generate": data_root, "extract": features}  # folders made elsewhere stand for those stages
    vocab = resolve(VOCAB, config, given=given)
    stamp = (vocab / VOCAB_FILE).stat().st_mtime_ns
    tokens = resolve(TOKENIZE, config, given=given)
    assert resolve(VOCAB, config, given=given) == vocab and (vocab / VOCAB_FILE).stat().st_mtime_ns == stamp
    assert resolve(TOKENIZE, config, given=given) == tokens and len(read_token_file(tokens)) == 2
    config.vocab.k = 2  # another vocabulary, another folder
    assert resolve(VOCAB, config, given=given) != vocab


def test_purity_numbers_by_hand():
    from vbert.visual_words.figures import chance_purity, cluster_purity, labelled_clips, word_purities

    words = np.array([0, 0, 0, 1, 1, 2])
    labels = ["cut", "cut", "stir", "stir", "stir", "add"]
    assert cluster_purity(words, labels) == pytest.approx(5 / 6)
    assert word_purities(words, labels)[0] == (3, "cut", pytest.approx(2 / 3))
    assert cluster_purity(np.zeros(6, dtype=int), labels) == pytest.approx(3 / 6)
    pure = np.array([0, 0, 1, 1, 2, 2])
    tidy = ["a", "a", "b", "b", "c", "c"]
    assert cluster_purity(pure, tidy) == 1.0 and chance_purity(pure, tidy, repeats=20) < 0.9
    records = [{"segments": [{"verb": "cut", "video_words": [4, 5]}, {"verb": None, "video_words": [6]}]}]
    got_words, got_labels = labelled_clips(records, "verb")
    assert got_words.tolist() == [4, 5] and got_labels == ["cut", "cut"]


def test_clips_nearest_word_and_mosaic():
    from vbert.visual_words.figures import clips_nearest_word, mosaic
    from vbert.visual_words.kmeans import HierarchicalKMeans

    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    tree = HierarchicalKMeans(k=2, depth=2, seed=0).fit(x)
    words = tree.assign(x)
    word = int(words[0])
    chosen = clips_nearest_word(tree, x, word, n=5)
    assert len(chosen) == min(5, int((words == word).sum())) and bool((words[chosen] == word).all())
    dist = ((x[chosen] - tree.leaf_centroids[word]) ** 2).sum(1)
    assert bool((dist[1:] >= dist[:-1]).all())
    member_dist = ((x[words == word] - tree.leaf_centroids[word]) ** 2).sum(1)
    assert float(dist[0]) == pytest.approx(float(member_dist.min()))
    frames = np.stack([np.full((3, 3, 3), 10 * i, dtype=np.uint8) for i in range(5)])
    image = mosaic(frames, cols=2, pad=1)
    assert image.shape == (3 * 4 - 1, 2 * 4 - 1, 3)
    assert image[4, 4, 0] == 30 and image[8, 0, 0] == 40 and image[8, 4, 0] == 255  # frame 3, frame 4, empty


def test_middle_frames_decodes_the_right_clip(tmp_path):
    from vbert.data.video import write_video
    from vbert.visual_words.figures import middle_frames

    # 3 clips of 10 frames at 10 fps; clip c is filled with grey level 60 * (c + 1)
    frames = np.concatenate([np.full((10, 32, 32, 3), 60 * (c + 1), dtype=np.uint8) for c in range(3)])
    path = write_video(tmp_path / "v.mp4", frames, fps=10.0)
    got = middle_frames([(path, 2.0), (path, 0.0)], fps=10.0, clip_frames=10, size=16)
    assert got.shape == (2, 16, 16, 3)
    assert abs(int(got[0].mean()) - 180) < 12 and abs(int(got[1].mean()) - 60) < 12


def test_clip_labels_match_the_token_file(tmp_path):
    from vbert.features.store import FeatureStore
    from vbert.visual_words.figures import clip_labels, labelled_clips

    features = make_features(tmp_path / "features", {"narrated": 20, "silent": 40}, shuffle="narrated")
    config = tiny_config()
    vocab = fit_vocab(features, tmp_path / "vocab", config)
    out = tokenize_features(features, make_dataset(), vocab, tmp_path / "tokens", config)
    store = FeatureStore(features)
    rows, labels = clip_labels(store, make_dataset(), "noun")
    words = load_vocab(vocab).assign(torch.from_numpy(store.features))
    from_file, file_labels = labelled_clips(read_token_file(out), "noun")
    assert sorted(zip(words[rows].tolist(), labels)) == sorted(zip(from_file.tolist(), file_labels))
    assert labels.count("tomato") == 4 and labels.count("soup") == 6


def test_assign_words_in_chunks_matches_one_pass():
    from vbert.visual_words.kmeans import HierarchicalKMeans
    from vbert.visual_words.tokenize import assign_words

    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(9))
    tree = HierarchicalKMeans(k=3, depth=2, seed=0).fit(x)
    assert torch.equal(assign_words(tree, x.half(), "tree", chunk=7), tree.assign(x.half()))
    assert torch.equal(assign_words(tree, x, "nearest", chunk=50), tree.assign_nearest_leaf(x))
    with pytest.raises(DataError, match="assignment"):
        assign_words(tree, x, "closest")


def test_tokenize_skips_finished_work_and_redoes_it_when_an_input_changes(tmp_path, capsys):
    from vbert.core.manifest import file_sha256
    from vbert.visual_words.tokenize import tokens_complete

    features = make_features(tmp_path / "features", {"v1": 30})
    annotations = {"database": {"v1": {"duration": 45.0, "subset": "training", "annotations": []}}}
    (tmp_path / "ann.json").write_text(json.dumps(annotations), encoding="utf-8")
    common = ["--set", "vocab.k=3", "--set", "vocab.depth=2", "--device", "cpu"]
    vocab_args = ["vocab", "--features", str(features), "--out", str(tmp_path / "vocab"), *common]
    tok_args = ["tokenize", "--features", str(features), "--vocab", str(tmp_path / "vocab")]
    tok_args += ["--data", str(tmp_path / "ann.json"), "--out", str(tmp_path / "tokens"), *common]
    assert cli_main(vocab_args) == 0 and cli_main(tok_args) == 0
    stamp = (tmp_path / "tokens" / "tokens.jsonl").stat().st_mtime_ns
    capsys.readouterr()
    assert cli_main(tok_args) == 0
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "tokens" / "tokens.jsonl").stat().st_mtime_ns == stamp
    data_hash, config = file_sha256(tmp_path / "ann.json"), tiny_config()
    assert tokens_complete(tmp_path / "tokens", features, tmp_path / "vocab", config, data_hash)
    assert not tokens_complete(tmp_path / "tokens", features, tmp_path / "vocab", config, "other data")
    config.vocab.assignment = "nearest"  # another setting
    assert not tokens_complete(tmp_path / "tokens", features, tmp_path / "vocab", config, data_hash)
    # another vocabulary (a refit with another seed) makes the tokens stale
    assert cli_main([*vocab_args, "--force", "--set", "seed=5"]) == 0
    assert not tokens_complete(tmp_path / "tokens", features, tmp_path / "vocab", tiny_config(), data_hash)
    capsys.readouterr()
    assert cli_main(tok_args) == 0 and "up to date" not in capsys.readouterr().out


def test_tokenize_stage_of_vbert_run_redoes_tokens_only_when_an_input_changes(tmp_path, monkeypatch):
    import vbert.visual_words.tokenize
    from vbert.core.manifest import file_sha256
    from vbert.visual_words.tokenize import run_stage

    def run_tokenize_stage(config, run_dir, force):
        inputs = {
            "generate": run_dir / "synthcook",
            "extract": run_dir / "features",
            "vocab": run_dir / "vocab",
        }
        return run_stage(config, inputs, run_dir / "tokenize", force)

    run_dir = tmp_path / "run"
    make_features(run_dir / "features", {"narrated": 20, "silent": 40})
    (run_dir / "synthcook").mkdir(parents=True)
    (run_dir / "synthcook" / "annotations.json").write_text("{}", encoding="utf-8")
    write_manifest(run_dir / "synthcook", "generate", {"data": "test"})
    monkeypatch.setattr(vbert.visual_words.tokenize, "load_synthcook", lambda root: make_dataset())
    config = tiny_config()
    fit_vocab(run_dir / "features", run_dir / "vocab", config)
    summary = run_tokenize_stage(config, run_dir, force=False)
    assert summary["videos"] == 2 and summary["failures"] == 1
    tokens = run_dir / "tokenize" / "tokens.jsonl"
    stamp = tokens.stat().st_mtime_ns
    run_tokenize_stage(config, run_dir, force=False)
    assert tokens.stat().st_mtime_ns == stamp  # nothing changed: not redone
    # a vocabulary refitted on another sample: same settings and features, another vocabulary file
    fit_vocab(run_dir / "features", run_dir / "vocab", config, sample_size=30)
    run_tokenize_stage(config, run_dir, force=False)
    assert tokens.stat().st_mtime_ns != stamp
    vocab_hash = file_sha256(run_dir / "vocab" / VOCAB_FILE)
    assert read_manifest(run_dir / "tokenize")["inputs"]["vocab_file"] == vocab_hash


def test_tokenize_with_data_takes_features_and_vocab_beside_it_never_the_presets(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("VBERT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "ann.json").write_text(json.dumps({"database": {}}), encoding="utf-8")
    features = make_features(tmp_path / "features", {"v1": 30})
    for extra, missing in (([], "--features"), (["--features", str(features)], "--vocab")):
        code = cli_main(
            ["tokenize", "--data", str(tmp_path / "ann.json"), *extra, "--out", str(tmp_path / "t")]
        )
        err = capsys.readouterr().err
        assert code == 2 and f"give {missing} too" in err and "\n" not in err.strip()
    assert not (tmp_path / "cache").exists()  # the preset's SynthCook was not built

    # a `vbert run` folder: its features/ and vocab/ go with its synthcook/
    from argparse import Namespace

    from vbert.visual_words.tokenize import _defaults_beside_data

    run = tmp_path / "run"
    for folder in ("synthcook", "features", "vocab"):
        (run / folder).mkdir(parents=True)
    (run / "pipeline.json").write_text("{}", encoding="utf-8")
    args = Namespace(data=str(run / "synthcook"), features=None, vocab=None)
    _defaults_beside_data(args)
    assert (args.features, args.vocab) == (run / "features", run / "vocab")


def test_tokenize_records_what_the_dataset_loader_could_not_read(tmp_path):
    from vbert.data.dataset import Failure

    features = make_features(tmp_path / "features", {"narrated": 20, "silent": 40, "unreadable": 5})
    config = tiny_config()
    vocab = fit_vocab(features, tmp_path / "vocab", config)
    dataset = make_dataset()
    dataset.failures = [
        Failure("unreadable", "ann.json: video unreadable: missing field(s) duration"),
        Failure("silent", "narrations.json: video silent: 3 texts but 3 starts and 2 ends"),
    ]
    out = tokenize_features(features, dataset, vocab, tmp_path / "tokens", config)
    assert {r["video_id"] for r in read_token_file(out)} == {"narrated", "silent"}
    reasons = [(f["item"], f["reason"]) for f in read_manifest(out)["failures"]]
    assert sorted(item for item, _ in reasons) == ["never_extracted", "silent", "unreadable"]  # each once
    assert ("unreadable", "ann.json: video unreadable: missing field(s) duration") in reasons
    assert ("silent", "narrations.json: video silent: 3 texts but 3 starts and 2 ends") in reasons


def _tokenize_youcook2(tmp_path, captions, capsys) -> str:
    """`vbert tokenize` on tmp_path/ann.json with `captions`; its printed line."""
    args = [
        "tokenize",
        "--features",
        str(tmp_path / "features"),
        "--vocab",
        str(tmp_path / "vocab"),
        "--data",
        str(tmp_path / "ann.json"),
        "--captions",
        str(captions),
        "--out",
        str(tmp_path / "tokens"),
        "--set",
        "vocab.k=3",
        "--set",
        "vocab.depth=2",
        "--device",
        "cpu",
    ]
    capsys.readouterr()
    assert cli_main(args) == 0
    return capsys.readouterr().out


def test_tokenize_records_bad_captions_and_redoes_tokens_when_the_captions_change(tmp_path, capsys):
    features = make_features(tmp_path / "features", {"v1": 30, "v2": 20})
    fit_vocab(features, tmp_path / "vocab", tiny_config())
    entry = {"duration": 45.0, "subset": "training", "annotations": []}
    (tmp_path / "ann.json").write_text(json.dumps({"database": {"v1": entry, "v2": entry}}), encoding="utf-8")
    good = {
        "v1": {"text": ["stir the soup"], "start": [1.0], "end": [4.0]},
        "v2": {"text": ["add salt", "done"], "start": [1.0, 5.0], "end": [3.0]},
    }  # v2: one end short
    (tmp_path / "good.json").write_text(json.dumps(good), encoding="utf-8")
    assert "1 failures" in _tokenize_youcook2(tmp_path, tmp_path / "good.json", capsys)
    (failure,) = read_manifest(tmp_path / "tokens")["failures"]
    assert (
        failure["item"] == "v2"
        and "good.json: video v2: 2 texts but 2 starts and 1 ends" in failure["reason"]
    )
    assert "up to date" in _tokenize_youcook2(tmp_path, tmp_path / "good.json", capsys)
    other = {"v1": {"text": ["chop the onion"], "start": [1.0], "end": [4.0]}}
    (tmp_path / "other.json").write_text(json.dumps(other), encoding="utf-8")
    printed = _tokenize_youcook2(tmp_path, tmp_path / "other.json", capsys)
    assert "up to date" not in printed and "0 failures" in printed
    texts = {r["video_id"]: [s["text"] for s in r["sentences"]] for r in read_token_file(tmp_path / "tokens")}
    assert texts["v1"] == ["chop the onion"] and texts["v2"] == [""] * 2  # v2: no narration, 16-word segments
    # a folder of <video_id>.csv captions: editing one of its files redoes the tokens too
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "v1.csv").write_text("start,end,text\n1.0,4.0,stir the soup\n", encoding="utf-8")
    assert "up to date" not in _tokenize_youcook2(tmp_path, tmp_path / "csv", capsys)
    assert "up to date" in _tokenize_youcook2(tmp_path, tmp_path / "csv", capsys)
    (tmp_path / "csv" / "v1.csv").write_text("start,end,text\n1.0,4.0,taste the soup\n", encoding="utf-8")
    assert "up to date" not in _tokenize_youcook2(tmp_path, tmp_path / "csv", capsys)
    (record,) = [r for r in read_token_file(tmp_path / "tokens") if r["video_id"] == "v1"]
    assert record["sentences"][0]["text"] == "taste the soup"


def test_captions_where_they_are_not_used_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VBERT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "captions.json").write_text("{}", encoding="utf-8")
    (tmp_path / "synthcook").mkdir()
    common = [
        "--features",
        str(tmp_path / "features"),
        "--vocab",
        str(tmp_path / "vocab"),
        "--captions",
        str(tmp_path / "captions.json"),
        "--out",
        str(tmp_path / "tokens"),
    ]
    for data in (["--data", str(tmp_path / "synthcook")], []):
        assert cli_main(["tokenize", *data, *common]) == 2
        err = capsys.readouterr().err
        assert "captions.json: --captions is only used with --data <YouCook2 annotation JSON>" in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "tokens").exists()


def test_a_data_folder_without_manifest_is_identified_by_its_files(tmp_path):
    from argparse import Namespace

    from vbert.visual_words.tokenize import _load_dataset

    data = tmp_path / "synthcook"
    (data / "videos").mkdir(parents=True)
    entry = {"duration": 45.0, "subset": "training", "annotations": []}
    (data / "annotations.json").write_text(json.dumps({"database": {"v1": entry}}), encoding="utf-8")
    (data / "narrations.json").write_text("{}", encoding="utf-8")
    args = Namespace(data=str(data), captions=None)
    dataset, first = _load_dataset(args, tiny_config())
    assert [f.item for f in dataset.failures] == ["v1"]  # no video file for it
    narrations = {"v1": {"text": ["stir"], "start": [1.0], "end": [2.0]}}
    (data / "narrations.json").write_text(json.dumps(narrations), encoding="utf-8")
    assert first and _load_dataset(args, tiny_config())[1] != first  # edited narration: other tokens
