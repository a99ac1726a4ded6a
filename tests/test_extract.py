"""`vbert extract`: shards that match the clips, failures recorded, resume after a kill, ranks merged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vbert.config import load_config
from vbert.core.manifest import read_manifest
from vbert.data.video import read_clips, write_video
from vbert.errors import DataError
from vbert.features import extract as extract_mod
from vbert.features.extractors import build_extractor
from vbert.features.store import FeatureStore, FeatureWriter

pytestmark = pytest.mark.filterwarnings("ignore:.*little meaning:UserWarning")

SECONDS = {"alpha": 3.2, "bravo": 1.6, "charlie": 4.6, "delta": 3.1, "echo": 1.7}  # clips: 2, 1, 3, 2, 1


def _config(**extra: object):
    sets = [
        "features.weights=none",
        "video.crop_size=32",
        "features.batch_size=3",
        "features.num_workers=0",  # decoding in this process, where a test can watch it
        *[f"{k}={v}" for k, v in extra.items()],
    ]
    return load_config("tiny", sets)


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five small moving-square videos, one too short for a clip and one corrupt file."""
    folder = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    for i, (name, seconds) in enumerate(SECONDS.items()):
        n = int(seconds * 20)
        frames = np.full((n, 48, 64, 3), 40 * i, np.uint8)  # [T, H, W, 3]
        for t in range(n):
            x = (t * 2) % 48
            frames[t, 10:26, x : x + 16] = rng.integers(0, 256, 3)
        write_video(folder / f"{name}.mp4", frames, fps=20)
    write_video(folder / "short.mp4", np.zeros((12, 48, 64, 3), np.uint8), fps=20)  # 0.6 s: no clip
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return folder


def _expected_counts() -> dict[str, int]:
    return {name: int(seconds * 20) // 30 for name, seconds in SECONDS.items()}


def test_extraction_writes_every_clip_and_records_failures(video_folder: Path, tmp_path: Path) -> None:
    config = _config()
    out = extract_mod.extract_features(video_folder, tmp_path / "f", config, show_progress=False)
    store = FeatureStore(out)
    assert store.dim == 1024
    assert {v: len(store.clips_of(v)[0]) for v in store.videos()} == _expected_counts()
    manifest = read_manifest(out)
    assert manifest["complete"] and manifest["outputs"]["clips"] == sum(_expected_counts().values())
    reasons = {f["item"]: f["reason"] for f in manifest["failures"]}
    assert set(reasons) == {"short", "broken"}
    assert "too short" in reasons["short"] and "broken.mp4" in reasons["broken"]
    # the stored vectors are the extractor's output for those clips (float16 precision)
    clips = read_clips(video_folder / "charlie.mp4", fps=20, clip_frames=30, size=32)
    vectors, starts, ends = store.clips_of("charlie")
    np.testing.assert_allclose(starts, [0.0, 1.5, 3.0])
    np.testing.assert_allclose(ends, [1.5, 3.0, 4.5])
    direct = build_extractor("course", "none")(clips.frames)
    np.testing.assert_allclose(vectors, direct, rtol=2e-2, atol=1e-3 * np.abs(direct).max())


def test_rerun_skips_and_a_killed_run_resumes_without_losing_work(
    video_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config()
    reference = FeatureStore(
        extract_mod.extract_features(video_folder, tmp_path / "ref", config, show_progress=False)
    )

    decoded: list[str] = []
    real_getitem = extract_mod.ClipDecoding.__getitem__

    def counting_getitem(self, i):  # type: ignore[no-untyped-def]
        decoded.append(self.videos[i][0])
        if len(decoded) == 4:
            raise KeyboardInterrupt  # the run is killed while decoding its fourth video
        return real_getitem(self, i)

    monkeypatch.setattr(extract_mod.ClipDecoding, "__getitem__", counting_getitem)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        extract_mod.extract_features(video_folder, out, config, shard_size=1, show_progress=False)
    assert not (out / "manifest.json").exists()
    finished = set(FeatureStore(out).videos())
    assert finished == {"alpha", "bravo"}  # shards of the first videos survived the kill

    decoded.clear()
    monkeypatch.setattr(extract_mod.ClipDecoding, "__getitem__", real_getitem)
    monkeypatch.setattr(
        extract_mod.ClipDecoding,
        "__getitem__",
        lambda self, i: decoded.append(self.videos[i][0]) or real_getitem(self, i),
    )
    extract_mod.extract_features(video_folder, out, config, shard_size=1, show_progress=False)
    assert not finished & set(decoded)  # nothing finished was decoded again
    resumed = FeatureStore(out)
    assert sorted(resumed.videos()) == sorted(reference.videos())
    for video in reference.videos():
        np.testing.assert_array_equal(resumed.clips_of(video)[0], reference.clips_of(video)[0])
    decoded.clear()
    extract_mod.extract_features(video_folder, out, config, shard_size=1, show_progress=False)
    assert decoded == []  # complete: the whole run is skipped


def test_extraction_runs_where_vbert_device_says_else_on_its_ranks_gpu(
    video_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As every other stage: $VBERT_DEVICE first (the tests pin the CPU), then the GPU of this rank."""
    devices: list[str] = []

    class Built(Exception):
        pass

    def build(name: str, weights: str, device: torch.device, seed: int = 0) -> None:
        devices.append(str(device))
        raise Built

    monkeypatch.setattr(extract_mod, "build_extractor", build)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with GPUs
    monkeypatch.setenv("LOCAL_RANK", "1")
    for run, device in (("pinned", "cpu"), ("auto", None)):
        if device is None:
            monkeypatch.delenv("VBERT_DEVICE", raising=False)
        else:
            monkeypatch.setenv("VBERT_DEVICE", device)
        with pytest.raises(Built):
            extract_mod.extract_features(video_folder, tmp_path / run, _config(), show_progress=False)
    with pytest.raises(Built):
        extract_mod.extract_features(video_folder, tmp_path / "given", _config(), device="cuda:0")
    assert devices == ["cpu", "cuda:1", "cuda:0"]


def test_ranks_take_shares_and_their_shards_merge(video_folder: Path, tmp_path: Path) -> None:
    config = _config()
    out = tmp_path / "ranks"
    extract_mod.extract_features(video_folder, out, config, rank=1, world_size=2, show_progress=False)
    assert not (out / "manifest.json").exists()  # rank 0 has not finished
    extract_mod.extract_features(video_folder, out, config, rank=0, world_size=2, show_progress=False)
    assert list(out.glob("shard-r0-*.npy")) and list(out.glob("shard-r1-*.npy"))
    store = FeatureStore(out)
    assert {v: len(store.clips_of(v)[0]) for v in store.videos()} == _expected_counts()
    manifest = read_manifest(out)
    assert manifest["world_size"] == 2 and {f["item"] for f in manifest["failures"]} == {"short", "broken"}


def test_decoding_workers_give_the_same_features(video_folder: Path, tmp_path: Path) -> None:
    serial = FeatureStore(
        extract_mod.extract_features(video_folder, tmp_path / "a", _config(), show_progress=False)
    )
    parallel_config = _config(**{"features.num_workers": 2})
    parallel = FeatureStore(
        extract_mod.extract_features(video_folder, tmp_path / "b", parallel_config, show_progress=False)
    )
    assert sorted(parallel.videos()) == sorted(serial.videos())
    for video in serial.videos():
        np.testing.assert_array_equal(parallel.clips_of(video)[0], serial.clips_of(video)[0])


def test_a_folder_made_with_other_settings_is_refused_unless_forced(
    video_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f"
    extract_mod.extract_features(video_folder, out, _config(), show_progress=False)
    other = _config(**{"video.crop_size": 40})
    with pytest.raises(DataError, match="different settings"):
        extract_mod.extract_features(video_folder, out, other, show_progress=False)
    extract_mod.extract_features(video_folder, out, other, force=True, show_progress=False)
    assert read_manifest(out)["config"]["video"]["crop_size"] == 40


def test_cli_extract_runs_on_a_folder(
    video_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vbert.cli import main

    out = tmp_path / "cli"
    code = main(
        [
            "extract",
            str(video_folder),
            "--out",
            str(out),
            "--set",
            "video.crop_size=32",
            "--weights",
            "none",
            "--batch-size",
            "4",
        ]
    )
    assert code == 0
    assert "9 clips from 5 videos, 2 failures" in capsys.readouterr().out
    assert main(["extract", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nowhere: expected a video file" in err and "nothing is there" in err


def test_cli_extract_takes_a_single_video_file(
    video_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vbert.cli import main

    args = ["--set", "video.crop_size=32", "--weights", "none"]
    assert main(["extract", str(video_folder / "charlie.mp4"), "--out", str(tmp_path / "one"), *args]) == 0
    assert "3 clips from 1 videos, 0 failures" in capsys.readouterr().out
    store = FeatureStore(tmp_path / "one")
    assert store.videos() == ["charlie"] and len(store.clips_of("charlie")[0]) == 3
    text = tmp_path / "notes.txt"
    text.write_text("not a video", encoding="utf-8")
    assert main(["extract", str(text), "--out", str(tmp_path / "two"), *args]) == 2
    assert "notes.txt: expected a video file" in capsys.readouterr().err
    assert main(["extract", str(video_folder / "short.mp4"), "--out", str(tmp_path / "three"), *args]) == 2
    assert "short.mp4: video too short" in capsys.readouterr().err


# ---------------------------------------------------------------- annotation files, listing failures, bad folders


def _annotation_entry(duration: float = 3.0) -> dict:
    return {
        "duration": duration,
        "subset": "training",
        "annotations": [{"id": 0, "segment": [0.0, 1.5], "sentence": "cut it"}],
    }


def _annotated_folder(root: Path, present: list[str], absent: list[str], in_videos: bool = True) -> Path:
    """An annotation file listing `present` + `absent` videos and one entry without a duration; only `present` have files."""
    folder = root / "videos" if in_videos else root
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(present):
        write_video(
            folder / f"{name}.mp4", np.full((60, 48, 64, 3), 50 * i, np.uint8), fps=20
        )  # 3 s: 2 clips
    database = {name: _annotation_entry() for name in [*present, *absent]}
    database["no_duration"] = {"subset": "training", "annotations": []}
    (root / "ann.json").write_text(json.dumps({"database": database}), encoding="utf-8")
    return root / "ann.json"


@pytest.mark.parametrize("in_videos", [True, False], ids=["videos-subfolder", "same-folder"])
def test_annotation_file_finds_its_videos_beside_it_and_records_every_listing_failure(
    tmp_path: Path, in_videos: bool, capsys: pytest.CaptureFixture
) -> None:
    from vbert.cli import main

    annotations = _annotated_folder(tmp_path / "data", ["v0", "v1"], ["gone0", "gone1", "gone2"], in_videos)
    out = tmp_path / "features"
    code = main(
        ["extract", str(annotations), "--out", str(out), "--set", "video.crop_size=32", "--weights", "none"]
    )
    assert code == 0
    assert "4 clips from 2 videos, 4 failures" in capsys.readouterr().out
    assert sorted(FeatureStore(out).videos()) == ["v0", "v1"]
    reasons = {f["item"]: f["reason"] for f in read_manifest(out)["failures"]}
    assert set(reasons) == {"gone0", "gone1", "gone2", "no_duration"}
    assert "ann.json: video gone1: no video file" in reasons["gone1"] and "duration" in reasons["no_duration"]


def test_listing_failures_are_recorded_once_whatever_the_number_of_ranks(tmp_path: Path) -> None:
    annotations = _annotated_folder(tmp_path / "data", ["v0", "v1", "v2"], ["gone0", "gone1"])
    out = tmp_path / "features"
    for rank in (1, 0):
        extract_mod.extract_features(
            annotations,
            out,
            _config(),
            video_dir=annotations.parent / "videos",
            rank=rank,
            world_size=2,
            show_progress=False,
        )
    manifest = read_manifest(out)
    assert manifest["complete"] and sorted(FeatureStore(out).videos()) == ["v0", "v1", "v2"]
    assert sorted(f["item"] for f in manifest["failures"]) == ["gone0", "gone1", "no_duration"]


def test_an_annotation_file_with_no_video_to_extract_is_an_error(tmp_path: Path) -> None:
    annotations = _annotated_folder(tmp_path / "data", [], ["gone0", "gone1"])
    out = tmp_path / "features"
    with pytest.raises(
        DataError, match=r"ann\.json: no video to extract: none of its 3 videos has a usable file"
    ):
        extract_mod.extract_features(annotations, out, _config(), show_progress=False)
    assert not (out / "manifest.json").exists()
    # --video-dir names another folder
    other = tmp_path / "elsewhere"
    write_video(other / "training" / "gone1.mp4", np.zeros((40, 48, 64, 3), np.uint8), fps=20)
    extract_mod.extract_features(annotations, out, _config(), video_dir=other, show_progress=False)
    assert FeatureStore(out).videos() == ["gone1"]
    with pytest.raises(DataError, match="only used with a YouCook2 annotation file"):
        extract_mod.extract_features(other, tmp_path / "f2", _config(), video_dir=other, show_progress=False)


def test_when_every_video_fails_the_run_is_an_error_with_its_failures_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"not a video")
    write_video(folder / "short.mp4", np.zeros((12, 48, 64, 3), np.uint8), fps=20)
    out = tmp_path / "features"
    with pytest.raises(DataError, match=r"videos: no video could be extracted \(2 failures"):
        extract_mod.extract_features(folder, out, _config(), show_progress=False)
    manifest = read_manifest(out)
    assert not manifest["complete"] and {f["item"] for f in manifest["failures"]} == {"broken", "short"}


def test_two_files_of_one_video_id_are_a_failure_naming_both(video_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("alpha.mp4", "bravo.mp4"):
        (folder / name).write_bytes((video_folder / name).read_bytes())
    (folder / "alpha.mkv").write_bytes((video_folder / "charlie.mp4").read_bytes())
    out = extract_mod.extract_features(folder, tmp_path / "f", _config(), show_progress=False)
    assert FeatureStore(out).videos() == ["bravo"]
    (failure,) = read_manifest(out)["failures"]
    assert (
        failure["item"] == "alpha"
        and "alpha.mkv and " in failure["reason"]
        and "alpha.mp4" in failure["reason"]
    )
    # the same under an annotation file whose video folder has subfolders
    data = tmp_path / "data"
    for sub, name in (("training", "alpha.mp4"), ("validation", "alpha.mp4"), ("training", "bravo.mp4")):
        (data / "videos" / sub).mkdir(parents=True, exist_ok=True)
        (data / "videos" / sub / name).write_bytes((video_folder / name).read_bytes())
    database = {"alpha": _annotation_entry(), "bravo": _annotation_entry()}
    (data / "ann.json").write_text(json.dumps({"database": database}), encoding="utf-8")
    out = extract_mod.extract_features(data / "ann.json", tmp_path / "g", _config(), show_progress=False)
    assert FeatureStore(out).videos() == ["bravo"]
    (failure,) = read_manifest(out)["failures"]
    assert failure["item"] == "alpha" and "training/alpha.mp4 and " in failure["reason"]
    assert "validation/alpha.mp4" in failure["reason"]


def test_a_corrupt_spec_or_an_out_path_that_is_a_file_is_named(video_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "f"
    extract_mod.extract_features(video_folder, out, _config(), show_progress=False)
    (out / "manifest.json").unlink()  # an unfinished folder: its spec is checked
    (out / extract_mod.SPEC_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"extract-spec\.json: not readable JSON .*--force"):
        extract_mod.extract_features(video_folder, out, _config(), show_progress=False)
    extract_mod.extract_features(video_folder, out, _config(), force=True, show_progress=False)
    assert read_manifest(out)["complete"]
    (tmp_path / "plain").write_text("", encoding="utf-8")
    for bad in (tmp_path / "plain", tmp_path / "plain" / "sub"):
        with pytest.raises(DataError, match=r"plain"):
            extract_mod.extract_features(video_folder, bad, _config(), show_progress=False)


def test_extract_is_registered_as_command_and_pipeline_stage() -> None:
    from vbert.cli import COMMANDS
    from vbert.pipeline.runner import STAGES

    commands = [name for name, _, _ in COMMANDS]
    assert "extract" in commands and "train-extractor" in commands
    names = [stage.name for stage in STAGES]
    assert names[:2] == ["generate", "extract"]  # extraction reads the videos the first stage makes
    extract = STAGES[1]
    assert [need.name for need in extract.needs] == ["generate"] and extract.out == "features"


# ---------------------------------------------------------------- shards that do not match their index


def _one_shard(folder: Path) -> tuple[Path, Path]:
    writer = FeatureWriter(folder, dim=4)
    writer.add("v1", np.ones((3, 4), np.float32), [0.0, 1.5, 3.0], [1.5, 3.0, 4.5])
    writer.flush()
    return folder / "shard-r0-00000.npy", folder / "shard-r0-00000.json"


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda a, i: np.save(a, np.ones((2, 4), np.float16)),
            r"shard-r0-00000\.npy: shape \[2, 4\] does not match",
        ),
        (
            lambda a, i: np.save(a, np.ones((3, 5), np.float16)),
            r"shard-r0-00000\.npy: shape \[3, 5\] does not match",
        ),
        (lambda a, i: a.write_bytes(b"garbage"), r"shard-r0-00000\.npy: cannot read feature shard"),
        (lambda a, i: a.unlink(), r"shard-r0-00000\.npy: cannot read feature shard"),
        (
            lambda a, i: np.save(a, np.full((3, 4), np.nan, np.float16)),
            r"shard-r0-00000\.npy: feature values must be finite",
        ),
        (lambda a, i: i.write_text("{not json"), r"shard-r0-00000\.json: feature index is not readable JSON"),
        (
            lambda a, i: i.write_text(json.dumps({"dim": 4, "count": 3})),
            r"shard-r0-00000\.json: feature index lacks 'rows'",
        ),
        (
            lambda a, i: i.write_text(
                json.dumps({"dim": 4, "count": 3, "rows": [["v1", 0, 1.5], ["v1", 3, 1.5], ["v1", 3, 4.5]]})
            ),
            r"shard-r0-00000\.json: row 1 is",
        ),
    ],
    ids=[
        "wrong-count",
        "wrong-dim",
        "corrupt-array",
        "missing-array",
        "nan",
        "bad-json",
        "no-rows",
        "bad-row",
    ],
)
def test_shards_that_do_not_match_their_index_are_refused_by_name(
    tmp_path: Path, damage, message: str
) -> None:
    array_path, index_path = _one_shard(tmp_path)
    assert len(FeatureStore(tmp_path)) == 3
    damage(array_path, index_path)
    with pytest.raises(DataError, match=message):
        FeatureStore(tmp_path)


def test_a_video_in_two_shards_is_refused(tmp_path: Path) -> None:
    _one_shard(tmp_path)
    FeatureWriter(tmp_path, dim=4, rank=1).add("v1", np.ones((1, 4), np.float32), [0.0], [1.5])
    writer = FeatureWriter(tmp_path, dim=4, rank=1)
    writer.add("v1", np.ones((1, 4), np.float32), [0.0], [1.5])
    writer.flush()
    with pytest.raises(DataError, match=r"shard-r1-00000\.json: video 'v1' is also in shard-r0-00000\.json"):
        FeatureStore(tmp_path)


def test_files_not_named_like_shards_are_ignored(tmp_path: Path) -> None:
    array_path, index_path = _one_shard(tmp_path)
    for suffix in (".npy", ".json"):  # a copy a file manager left beside the shard
        (tmp_path / f"shard-r0-00000 (copy){suffix}").write_bytes(
            (tmp_path / f"shard-r0-00000{suffix}").read_bytes()
        )
    (tmp_path / "shard-r0-notes.json").write_text("{}", encoding="utf-8")
    assert FeatureStore(tmp_path).videos() == ["v1"] and len(FeatureStore(tmp_path)) == 3
    writer = FeatureWriter(tmp_path, dim=4)
    writer.add("v2", np.ones((1, 4), np.float32), [0.0], [1.5])
    writer.flush()
    assert (tmp_path / "shard-r0-00001.json").is_file()
    assert FeatureStore(tmp_path).videos() == ["v1", "v2"]
