"""Extractors: 1024-d output at any crop size, weight files (good, corrupt, foreign), the course network."""

from __future__ import annotations

import hashlib
import http.server
import threading
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from vbert.errors import ConfigError, DataError
from vbert.features import course_s3d, course_training, extractors
from vbert.features.extractors import FEATURE_DIM, build_extractor
from vbert.features.probe import linear_probe


def _clips(n: int, t: int = 30, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(
        0, 256, (n, t, size, size, 3), dtype=np.uint8
    )  # [N, T, S, S, 3]


def _random_extractor(name: str):
    with pytest.warns(UserWarning, match="little meaning"):
        return build_extractor(name, "none", "cpu")


@pytest.mark.parametrize("size", [48, 64, 96, 112])
def test_course_network_is_resolution_agnostic(size: int) -> None:
    torch.manual_seed(0)
    extractor = _random_extractor("course")
    out = extractor(_clips(2, size=size))
    assert out.shape == (2, FEATURE_DIM) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.std() > 0


def test_random_s3d_gives_1024_pooled_features_on_small_crops() -> None:
    extractor = _random_extractor("s3d")
    out = extractor(_clips(2, t=16, size=48))
    assert out.shape == (2, FEATURE_DIM)
    assert not np.allclose(out[0], out[1])  # different clips, different vectors


def test_per_frame_resnet_ignores_frame_order_but_3d_networks_do_not() -> None:
    torch.manual_seed(0)
    clip = _clips(1, size=48)
    reversed_clip = clip[:, ::-1].copy()  # the same frames played backwards
    resnet = _random_extractor("resnet")
    assert resnet.dim == FEATURE_DIM
    np.testing.assert_allclose(resnet(clip), resnet(reversed_clip), rtol=1e-4, atol=1e-5)
    course = _random_extractor("course")
    forward, backward = course(clip), course(reversed_clip)
    assert np.linalg.norm(forward - backward) > 1e-3 * np.linalg.norm(forward)


def test_bad_clip_arrays_are_refused() -> None:
    extractor = _random_extractor("course")
    with pytest.raises(DataError, match=r"expected clips \[N, T, H, W, 3\]"):
        extractor(np.zeros((2, 30, 64, 64), np.uint8))
    with pytest.raises(DataError, match="uint8"):
        extractor(np.zeros((1, 30, 64, 64, 3), np.float32))
    assert extractor(np.zeros((0, 30, 64, 64, 3), np.uint8)).shape == (0, FEATURE_DIM)


def test_unknown_extractor_or_weights_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown extractor 'c3d'"):
        build_extractor("c3d", "none")
    with pytest.raises(ConfigError, match="neither one of kinetics400, none nor an existing file"):
        build_extractor("s3d", str(tmp_path / "missing.pth"))


def test_s3d_loads_a_local_state_dict_file(tmp_path: Path) -> None:
    from torchvision.models.video import s3d

    torch.manual_seed(1)
    source = s3d(weights=None, num_classes=400)
    path = tmp_path / "s3d_kinetics.pth"
    torch.save(source.state_dict(), path)
    extractor = build_extractor("s3d", str(path), "cpu")
    loaded = extractor.network.state_dict()
    for key, value in source.state_dict().items():
        if key.startswith("features."):
            assert torch.equal(loaded[key], value), key
    clip = _clips(1, t=16, size=48)
    source.eval()
    with torch.inference_mode():
        expected = source.features(extractor.preprocess(clip)).mean(dim=(2, 3, 4)).numpy()
    np.testing.assert_allclose(extractor(clip), expected, rtol=1e-4, atol=1e-5)


def test_corrupt_or_foreign_weight_files_are_clear_data_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DataError, match=r"corrupt\.pth: corrupt, truncated or not a weight file"):
        build_extractor("s3d", str(corrupt))
    foreign = tmp_path / "resnet.pth"
    from torchvision.models import resnet18

    torch.save(resnet18(weights=None).state_dict(), foreign)
    with pytest.raises(DataError, match=r"resnet\.pth: \d+ of \d+ parameters missing"):
        build_extractor("s3d", str(foreign))
    from torchvision.models.video import s3d

    state = s3d(weights=None).state_dict()
    key = "features.0.0.0.weight"
    state[key] = torch.zeros(7, 3, 1, 7, 7)
    wrong_shape = tmp_path / "wrong_shape.pth"
    torch.save(state, wrong_shape)
    with pytest.raises(DataError, match=r"wrong_shape\.pth: parameter features\.0\.0\.0\.weight has shape"):
        build_extractor("s3d", str(wrong_shape))
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], not_a_dict)
    with pytest.raises(DataError, match="expected a state dict"):
        build_extractor("s3d", str(not_a_dict))


def test_kinetics_weights_go_through_the_download_and_fail_clearly_offline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from torchvision.models.video import s3d

    torch.manual_seed(2)
    served = s3d(weights=None, num_classes=400).state_dict()
    asked = []
    monkeypatch.setattr(extractors, "_download_weights", lambda enum, source: asked.append(enum) or served)
    extractor = build_extractor("s3d", "kinetics400")
    assert asked and asked[0].url.endswith(".pth")
    assert torch.equal(
        extractor.network.state_dict()["features.0.0.0.weight"], served["features.0.0.0.weight"]
    )

    class Offline:
        def get_state_dict(self, **_: object) -> dict:
            raise OSError("network unreachable")

    monkeypatch.undo()  # the real download helper again
    with pytest.raises(DataError, match="cannot download S3D weights .*give a local file"):
        extractors._download_weights(Offline(), "S3D")


def test_weight_download_fetches_and_checks_a_served_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision's weights API against a file served on 127.0.0.1 (the hash in its name is checked)."""
    from torchvision.models._api import Weights, WeightsEnum
    from torchvision.models.video import s3d

    serve = tmp_path / "serve"
    serve.mkdir()
    blob = tmp_path / "blob.pth"
    torch.save(s3d(weights=None).state_dict(), blob)
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()[:8]
    (serve / f"s3d-{digest}.pth").write_bytes(blob.read_bytes())
    (serve / "s3d-00000000.pth").write_bytes(blob.read_bytes())  # a name whose hash does not match
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        served = WeightsEnum(  # type: ignore[call-overload]
            "Served",
            {
                "GOOD": Weights(url=f"{base}/s3d-{digest}.pth", transforms=None, meta={}),
                "BAD": Weights(url=f"{base}/s3d-00000000.pth", transforms=None, meta={}),
            },
        )
        state = extractors._download_weights(served.GOOD, "S3D test")
        assert "features.0.0.0.weight" in state
        assert any((tmp_path / "torch-home").rglob(f"s3d-{digest}.pth"))  # cached for next time
        with pytest.raises(DataError, match="cannot download S3D test weights .*hash"):
            extractors._download_weights(served.BAD, "S3D test")
    finally:
        server.shutdown()
        server.server_close()


def test_course_checkpoint_round_trip_keeps_weights_labels_and_metadata(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = course_s3d.CourseS3D(
        course_s3d.CourseS3DConfig(verbs=["cut", "stir"], nouns=["egg", "milk", "oil"])
    )
    path = course_s3d.save_checkpoint(
        model, tmp_path / "c.safetensors", command="vbert train-extractor --steps 1"
    )
    meta = course_s3d.checkpoint_metadata(path)
    assert meta["command"] == "vbert train-extractor --steps 1"
    again = course_s3d.load_checkpoint(path)
    assert again.config.nouns == ["egg", "milk", "oil"]
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    extractor = build_extractor("course", str(path))
    model.eval()
    clip = _clips(2)
    with torch.inference_mode():
        expected = model.features(course_s3d.normalise(torch.from_numpy(clip))).numpy()
    np.testing.assert_allclose(extractor(clip), expected, rtol=1e-4, atol=1e-5)


def test_foreign_or_corrupt_course_checkpoints_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(DataError, match=r"plain\.safetensors: not a course S3D checkpoint"):
        build_extractor("course", str(plain))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 16)
    with pytest.raises(DataError, match=r"broken\.safetensors: not a readable safetensors file"):
        build_extractor("course", str(broken))


def test_committed_checkpoint_works_at_every_preset_crop_size() -> None:
    path = course_s3d.default_checkpoint()
    assert path.stat().st_size < 8 * 2**20  # a few MB, fit for git
    meta = course_s3d.checkpoint_metadata(path)
    assert meta["command"].startswith("vbert train-extractor")
    extractor = build_extractor("course", "default")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # trained weights: no random-weights warning
        for size in (64, 96, 112):
            out = extractor(_clips(2, size=size))
            assert out.shape == (2, FEATURE_DIM) and np.isfinite(out).all()


def test_linear_probe_separates_separable_features_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    centres = rng.normal(size=(3, 16)) * 3
    x = centres[labels] + rng.normal(size=(120, 16))
    assert linear_probe(x[:80], labels[:80], x[80:], labels[80:]) > 0.9
    noise = rng.normal(size=(120, 16))
    assert linear_probe(noise[:80], labels[:80], noise[80:], labels[80:]) < 0.7


def test_random_weights_are_fixed_by_the_seed() -> None:
    clip = _clips(1, size=48)
    with pytest.warns(UserWarning):
        a, b, c = (build_extractor("course", "none", seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a(clip), b(clip))  # every rank builds the same random network
    assert not np.allclose(a(clip), c(clip))


@pytest.fixture(scope="module")
def tiny_synthcook() -> Path:
    """The tiny preset's labelled action clips, in a SynthCook folder without its cooking videos.

    The action clips depend on the seed and the clip settings only (`plan_action_clips`), so they are
    those of the tiny preset, rendered without its 272 videos (two minutes of a 2-core CPU).
    """
    from vbert.config import load_config
    from vbert.core.stages import resolve
    from vbert.data.synthcook.generate import STAGE as GENERATE

    return resolve(GENERATE, load_config("tiny", ["data.num_train_videos=0", "data.num_val_videos=0"]))


@pytest.fixture(scope="module")
def committed_probe(tiny_synthcook: Path) -> dict[str, float]:
    """Linear-probe accuracies of the committed course features on the tiny preset's action clips."""
    return course_training.action_clip_probe(build_extractor("course", "default"), tiny_synthcook, size=64)


def test_committed_course_features_know_verb_and_noun_far_above_chance(committed_probe: dict) -> None:
    """Trained on a world generated with another seed; probed on the tiny preset's unseen action clips."""
    assert committed_probe["val_clips"] >= 40
    assert committed_probe["verb"] >= 0.7, committed_probe  # chance 1/15
    assert committed_probe["noun"] >= 0.4, committed_probe  # chance 1/22


def test_committed_course_features_reach_the_90_percent_probe_target(committed_probe: dict) -> None:
    assert committed_probe["verb"] >= 0.9 and committed_probe["noun"] >= 0.9, committed_probe


def test_the_committed_training_command_still_runs(tiny_synthcook: Path, tmp_path: Path) -> None:
    """The exact command stored in the checkpoint, on a budget of two steps and the tiny clips."""
    import shlex

    from vbert.cli import main

    argv = shlex.split(course_s3d.checkpoint_metadata(course_s3d.default_checkpoint())["command"])
    assert argv[:2] == ["vbert", "train-extractor"]
    argv = argv[1:]
    argv[argv.index("--steps") + 1] = "2"
    out = tmp_path / "again.safetensors"
    argv[argv.index("--out") + 1] = str(out)
    if "--device" in argv:  # the checkpoint was trained on a GPU; the replay runs where the tests run
        argv[argv.index("--device") + 1] = "cpu"
    assert main([*argv, "--data", str(tiny_synthcook)]) == 0
    retrained = course_s3d.load_checkpoint(out)
    assert course_s3d.checkpoint_metadata(out)["settings"]["steps"] == 2
    assert len(retrained.config.verbs) == 15 and len(retrained.config.nouns) == 22
