"""`vbert describe`: your own videos with a finished run; videos like this one; every kind of bad input.

One small run (module fixture, the micro preset of test_pipeline_e2e) describes videos the tests write
with OpenCV (25 fps 1280x720 and 29.97 fps 176x144) and one of the run's own videos, whose words
must be those of its token file. Each bad input is one line naming the file and the problem, with a
non-zero exit code; with several paths the good ones are still described.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from micro_run import micro_config

from vbert.cli import main
from vbert.config import Config, load_config
from vbert.core.stages import resolve
from vbert.data.synthcook.generate import STAGE as GENERATE
from vbert.data.video import read_frames
from vbert.describe import describe, open_run, recommend, same_recipe_precision, similar_videos
from vbert.describe.run import FinishedRun
from vbert.describe.similar import dataset_videos, unit_rows
from vbert.pipeline import runner as pipeline
from vbert.tasks.captioner_stage import STAGE as CAPTIONER
from vbert.visual_words.vocab import fit_vocab

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SENTENCES = ["crack the egg into the bowl", "slice the bread"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished micro run folder (every stage, the captioner kept by the evaluate stage)."""
    folder = tmp_path_factory.mktemp("describe-run")
    pipeline.run_pipeline(micro_config(folder), folder / "run")
    return folder / "run"


@pytest.fixture(scope="module")
def cached_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The same micro config, its artifacts built in the stage cache (the captioner stage and what it needs).

    Built by the first test, before any test decodes a large video: SynthCook's generator forks worker
    processes, and a fork taken while OpenCV's thread pool is running can hang in the child.
    """
    config = micro_config(tmp_path_factory.mktemp("describe-cache-config"))
    resolve(CAPTIONER, config)
    return config


def test_a_config_describes_from_the_stage_cache_with_the_captioner_table_3_keeps(
    cached_config: Config, run_dir: Path
) -> None:
    config = cached_config  # the run's config: its stage cache holds the same artifacts
    video = resolve(GENERATE, config) / "videos" / "sc_val_00000.mp4"  # the cache's own copy
    result = describe(video, run=config, similar=2)
    assert result.run.folder is None and "stage cache" in result.run.name and result.failures == []
    described = result.videos[0]
    assert described.words == _tokens(run_dir)["sc_val_00000"]["words"]
    assert described.segments[0].caption is not None
    assert "sc_val_00000" not in [v["video_id"] for v in described.similar]  # its own file, left out
    cached = resolve(CAPTIONER, config) / "captioner" / "captioner.safetensors"
    kept = run_dir / "eval" / "captioner" / "captioner.safetensors"
    assert cached.read_bytes() == kept.read_bytes()  # trained alone, the same captioner as Table 3's row


def _tokens(run: Path) -> dict[str, dict]:
    lines = (run / "tokenize" / "tokens.jsonl").read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["video_id"]: json.loads(line) for line in lines}


def write_with_opencv(path: Path, source: Path, fps: float, size: tuple[int, int], seconds: float) -> Path:
    """A video at `fps` and `size` (width, height) showing `source` (one of the run's videos), written by OpenCV."""
    frames, _ = read_frames(source, fps=fps)  # [T, H, W, 3] RGB at the new rate
    count = int(round(seconds * fps))
    frames = np.concatenate([frames] * (count // len(frames) + 1))[:count]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_a_video_of_the_run_gets_the_words_of_its_token_file_and_every_part(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    video = run_dir / "synthcook" / "videos" / "sc_val_00000.mp4"
    args = ["describe", str(video), "--run", str(run_dir), "--out", str(tmp_path / "out"), "--similar", "3"]
    assert main([*args, "--sentence", SENTENCES[0], "--sentence", SENTENCES[1], "--segment-clips", "4"]) == 0
    assert "sc_val_00000.mp4" in capsys.readouterr().out
    result = json.loads((tmp_path / "out" / "describe.json").read_text(encoding="utf-8"))
    run = open_run(run_dir)
    assert result["captioner"] == "VideoBERT + clip features" and result["caption_missing"] is None
    assert result["failures"] == [] and len(result["videos"]) == 1
    described, expected = result["videos"][0], _tokens(run_dir)["sc_val_00000"]
    assert described["words"] == expected["words"]  # decoded, extracted and assigned as the pipeline did
    assert described["clip_starts"] == expected["clip_starts"]
    segments = described["segments"]
    assert [len(s["words"]) for s in segments][:-1] == [4] * (len(segments) - 1)
    assert sum((s["words"] for s in segments), []) == expected["words"]
    for s in segments:
        assert [v["label"] for v in s["verbs"]] and {v["label"] for v in s["verbs"]} <= set(run.verbs.names)
        assert len(s["verbs"]) == min(5, len(run.verbs.names)) and len(s["nouns"]) == min(
            5, len(run.nouns.names)
        )
        assert s["verbs"][0]["log_prob"] >= s["verbs"][-1]["log_prob"]
        assert isinstance(s["caption"], str)
        assert [a["sentence"] for a in s["alignment"]] == SENTENCES
        assert all(0.0 <= a["probability"] <= 1.0 for a in s["alignment"])
    similar = [v["video_id"] for v in described["similar"]]
    assert len(similar) == 3 and "sc_val_00000" not in similar  # the video itself is left out
    image = __import__("matplotlib.image", fromlist=["imread"]).imread(
        tmp_path / "out" / described["storyboard"]
    )
    assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
    markdown = (tmp_path / "out" / "describe.md").read_text(encoding="utf-8")
    assert "| segment | seconds | visual words | verb top-5 | noun top-5 | caption |" in markdown
    assert SENTENCES[1] in markdown and "noise" in markdown  # the micro run trains no alignment head


def test_videos_at_25_fps_720p_and_29_97_fps_176x144_are_resampled_to_the_run(
    run_dir: Path, tmp_path: Path
) -> None:
    source = run_dir / "synthcook" / "videos" / "sc_val_00001.mp4"
    hd = write_with_opencv(tmp_path / "hd.mp4", source, 25.0, (1280, 720), 3.4)
    qcif = write_with_opencv(tmp_path / "qcif.avi", source, 30000 / 1001, (176, 144), 4.6)
    result = describe([hd, qcif], run=run_dir, out=tmp_path / "out", sentences=SENTENCES, similar=2)
    assert result.failures == [] and [v.video.path for v in result.videos] == [hd, qcif]
    for description, fps, size, clips in (
        (result.videos[0], 25.0, (1280, 720), 2),
        (result.videos[1], 29.97, (176, 144), 3),
    ):
        info = description.video.info
        assert round(info.fps, 2) == fps and (info.width, info.height) == size
        assert len(description.words) == clips  # 20 fps, 30-frame clips, whatever the source rate
        np.testing.assert_allclose(description.video.starts, 1.5 * np.arange(clips))
        assert description.video.thumbnails.shape[1:] == (32, 32, 3)  # the run's crop
        assert len(description.segments) == 1 and description.segments[0].caption is not None
        assert len(description.similar) == 2
    written = {p.name for p in result.files}
    assert written == {"describe.json", "describe.md", "storyboard-hd.png", "storyboard-qcif.png"}


# ---------------------------------------------------------------- bad input


def _bad_inputs(folder: Path, run_dir: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, words the one-line error must hold besides the path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("a shopping list, not a video\n", encoding="utf-8")
    good = (run_dir / "synthcook" / "videos" / "sc_val_00001.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(good[: len(good) // 2])
    write_with_opencv(
        folder / "short.mp4", run_dir / "synthcook" / "videos" / "sc_val_00001.mp4", 25.0, (64, 48), 1.2
    )
    (folder / "a-folder").mkdir(exist_ok=True)
    return {
        "zero bytes": (folder / "empty.mp4", "empty (0 bytes)"),
        "text named .mp4": (folder / "notes.mp4", "not a video OpenCV can read"),
        "truncated": (folder / "cut.mp4", "truncated"),
        "shorter than a clip": (folder / "short.mp4", "too short"),
        "missing": (folder / "nowhere.mp4", "not found"),
        "a folder": (folder / "a-folder", "a folder, not a video file"),
    }


@pytest.mark.parametrize(
    "kind", ["zero bytes", "text named .mp4", "truncated", "shorter than a clip", "missing", "a folder"]
)
def test_each_bad_video_is_one_line_naming_the_file_and_the_problem(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    path, problem = _bad_inputs(tmp_path / "bad", run_dir)[kind]
    capsys.readouterr()
    assert main(["describe", str(path), "--run", str(run_dir), "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and problem in lines[0], lines
    assert "Traceback" not in lines[0]


def test_with_several_paths_the_good_ones_are_described_and_the_bad_ones_listed(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = _bad_inputs(tmp_path / "bad", run_dir)
    good = run_dir / "synthcook" / "videos" / "sc_val_00002.mp4"
    paths = [str(good), *(str(p) for p, _ in bad.values())]
    capsys.readouterr()
    assert main(["describe", *paths, "--run", str(run_dir), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(bad)
    for (path, problem), line in zip(bad.values(), err):
        assert str(path) in line and problem in line
    result = json.loads((tmp_path / "out" / "describe.json").read_text(encoding="utf-8"))
    assert [v["path"] for v in result["videos"]] == [str(good)]
    assert [f["path"] for f in result["failures"]] == [str(p) for p, _ in bad.values()]
    assert "## Not described" in (tmp_path / "out" / "describe.md").read_text(encoding="utf-8")


def _one_line_error(capsys: pytest.CaptureFixture, args: list[str]) -> str:
    capsys.readouterr()
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


def test_a_missing_default_run_a_run_without_a_model_or_of_another_vocabulary_are_refused(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = str(run_dir / "synthcook" / "videos" / "sc_val_00000.mp4")
    monkeypatch.chdir(tmp_path)  # no runs/demo here
    assert "make demo" in _one_line_error(capsys, ["describe", video])
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    weights = copy / "pretrain" / "videobert.safetensors"
    weights.rename(copy / "pretrain" / "moved")
    line = _one_line_error(capsys, ["describe", video, "--run", str(copy)])
    assert "videobert.safetensors" in line and "no trained model" in line
    (copy / "pretrain" / "moved").rename(weights)
    # the vocabulary fitted again with other settings: same size, other clusters, then another size
    fit_vocab(copy / "features", copy / "vocab", micro_config(tmp_path, "vocab.max_iter=1", "vocab.n_init=1"))
    line = _one_line_error(capsys, ["describe", video, "--run", str(copy)])
    assert "vocab.safetensors" in line and "not the vocabulary the model" in line
    fit_vocab(copy / "features", copy / "vocab", micro_config(tmp_path, "vocab.k=2"))
    line = _one_line_error(capsys, ["describe", video, "--run", str(copy)])
    assert "vocab.safetensors: 4 visual words" in line and "knows 9" in line


def test_a_run_without_its_captioner_describes_without_captions_and_says_why_until_run_again(
    run_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    manifest_path = copy / "eval" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["outputs"] = {k: v for k, v in manifest["outputs"].items() if not k.startswith("captioner/")}
    del manifest["captioner"]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")  # as an older vbert left it
    video = copy / "synthcook" / "videos" / "sc_val_00000.mp4"
    result = describe(video, run=copy, out=tmp_path / "out", sentences=SENTENCES)
    segment = result.videos[0].segments[0]
    assert segment.caption is None and segment.verbs and segment.nouns and len(segment.alignment) == 2
    assert (
        "no captioner recorded" in result.run.captioner_missing
        and "vbert run" in result.run.captioner_missing
    )
    assert "Captions: missing" in (tmp_path / "out" / "describe.md").read_text(encoding="utf-8")
    # `vbert run` again: only the captioning task runs, and keeps the captioner
    before = {
        t: (copy / "eval" / f"{t}.json").stat().st_mtime_ns for t in ("zero-shot", "captioning", "retrieval")
    }
    results = pipeline.run_pipeline(micro_config(tmp_path), copy)
    assert [r.status for r in results][:-1] == ["skipped"] * (len(results) - 1) and results[
        -1
    ].status == "ran"
    after = {t: (copy / "eval" / f"{t}.json").stat().st_mtime_ns for t in before}
    assert after["zero-shot"] == before["zero-shot"] and after["retrieval"] == before["retrieval"]
    assert after["captioning"] != before["captioning"]
    assert describe(video, run=copy).videos[0].segments[0].caption is not None


# ---------------------------------------------------------------- videos like this one, a watch history


def test_similar_videos_and_a_watch_history_rank_by_the_mean_of_unit_embeddings(
    run_dir: Path, tmp_path: Path
) -> None:
    run = open_run(run_dir)
    data = dataset_videos(run)
    history = ["sc_val_00000", "sc_train_00009"]
    ranked = recommend(history, run=run, n=len(data.ids))
    assert len(ranked) == len(data.ids) - 2 and not {v["video_id"] for v in ranked} & set(history)
    rows = [data.ids.index(v) for v in history]
    expected = data.videobert @ unit_rows(data.videobert[rows].mean(0)[None])[0]
    expected[rows] = -np.inf
    assert [v["video_id"] for v in ranked] == [data.ids[i] for i in np.argsort(-expected, kind="stable")[:-2]]
    # one video watched: its similar videos; a file in the history counts as that video
    alone = recommend(["sc_val_00001"], run=run, n=4)
    assert alone == similar_videos(
        run, data.words[data.ids.index("sc_val_00001")], 4, exclude=["sc_val_00001"]
    )
    copy = shutil.copy(run_dir / "synthcook" / "videos" / "sc_val_00001.mp4", tmp_path / "mine.mp4")
    from_file = recommend([copy], run=run, n=5)
    assert [v["video_id"] for v in from_file][1:] == [v["video_id"] for v in alone][:4]
    assert from_file[0]["video_id"] == "sc_val_00001" and from_file[0]["similarity"] > 0.999


def test_same_recipe_precision_of_each_embedding_against_random(run_dir: Path) -> None:
    table = same_recipe_precision(run_dir, k=3, seeds=20)
    assert table["queries"] == 4 and table["candidates"] == len(_tokens(run_dir)) - 1
    assert set(table["rows"]) == {"VideoBERT", "mean clip features", "random"}
    assert all(0.0 <= row["mean"] <= 100.0 for row in table["rows"].values())
    assert table["rows"]["random"]["std"] > 0 and table["rows"]["VideoBERT"]["std"] == 0
    glimpse = same_recipe_precision(run_dir, k=3, seeds=2, glimpse=1, subsets=None)
    assert glimpse["queries"] == len(_tokens(run_dir)) and glimpse["glimpse"] == 1


def test_alignment_trained_follows_the_recipe() -> None:
    def trained(*overrides: str) -> bool:
        return FinishedRun.alignment_trained.fget(
            SimpleNamespace(config=load_config("tiny", list(overrides)))
        )

    assert trained()  # the tiny preset's second phase
    assert not trained("pretrain.alignment_share=0")
    assert not trained("pretrain.alignment_from_step=2400")  # a phase that never starts
    assert not trained("pretrain.regime_mix=[1,0,0]")
