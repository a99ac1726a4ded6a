"""Every loader refuses a pickle that would run code, and an artifact that no longer matches its manifest.

The malicious files below would create a marker file when unpickled; each test checks both the
clear error (naming the file) and that the marker was never created, i.e. nothing ran.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vbert.errors import ConfigError, DataError


class _Payload:
    """Unpickling this calls open(marker, "w"): a stand-in for any code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def _evil_torch_file(path: Path, marker: Path) -> Path:
    torch.save({"model": {"weight": torch.zeros(2)}, "trap": _Payload(marker)}, path)
    assert not marker.exists()  # saving does not run it; only loading would
    return path


def _evil_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Payload(marker)))
    return path


def test_checkpoints_refuse_pickled_code(tmp_path: Path) -> None:
    from vbert.pretraining.checkpoint import load_checkpoint

    marker = tmp_path / "ran"
    path = _evil_torch_file(tmp_path / "step-0000001.pt", marker)
    with pytest.raises(DataError, match=r"step-0000001\.pt: corrupt, truncated or not a vbert checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_feature_extractor_weight_files_refuse_pickled_code(tmp_path: Path) -> None:
    from vbert.core.weights import load_state_dict as load_state_dict_file

    marker = tmp_path / "ran"
    with pytest.raises(DataError, match=r"s3d\.pth: corrupt, truncated or not a weight file"):
        load_state_dict_file(_evil_torch_file(tmp_path / "s3d.pth", marker))
    with pytest.raises(DataError, match=r"fake\.safetensors: corrupt, truncated or not a weight file"):
        load_state_dict_file(_evil_pickle(tmp_path / "fake.safetensors", marker))
    assert not marker.exists()


def test_bert_checkpoint_directories_refuse_pickled_code(tmp_path: Path) -> None:
    from vbert.bert.hf import read_hf_weights

    marker = tmp_path / "ran"
    _evil_torch_file(tmp_path / "pytorch_model.bin", marker)
    with pytest.raises(DataError, match=r"pytorch_model\.bin: corrupt, truncated or not a weight file"):
        read_hf_weights(tmp_path)
    assert not marker.exists()


def test_feature_shards_refuse_object_arrays(tmp_path: Path) -> None:
    from vbert.features.store import FeatureStore

    marker = tmp_path / "ran"
    np.save(tmp_path / "shard-r0-00000.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    (tmp_path / "shard-r0-00000.json").write_text(
        json.dumps({"dim": 1, "count": 1, "rows": [["v", 0.0, 1.5]]}), encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"shard-r0-00000\.npy: cannot read feature shard"):
        FeatureStore(tmp_path)
    assert not marker.exists()


def test_vocabularies_and_models_refuse_pickles_in_disguise(tmp_path: Path) -> None:
    from vbert.pretraining.saved import load_pretrained
    from vbert.visual_words.kmeans import HierarchicalKMeans

    marker = tmp_path / "ran"
    with pytest.raises(DataError, match=r"vocab\.safetensors: not a readable safetensors vocabulary"):
        HierarchicalKMeans.load(_evil_pickle(tmp_path / "vocab.safetensors", marker))
    model = tmp_path / "model"
    model.mkdir()
    _evil_torch_file(model / "videobert.safetensors", marker)
    config = {"vocab_size": 16, "hidden_size": 8, "num_layers": 1, "num_heads": 2, "intermediate_size": 16}
    vocab = {
        "text_size": 10,
        "visual_size": 5,
        "pad_id": 0,
        "unk_id": 1,
        "cls_id": 2,
        "sep_id": 3,
        "mask_id": 4,
    }
    (model / "bert_config.json").write_text(json.dumps(config), encoding="utf-8")
    (model / "joint_vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(DataError, match=r"videobert\.safetensors"):
        load_pretrained(model)
    assert not marker.exists()


def test_configs_are_read_with_safe_load(tmp_path: Path) -> None:
    from vbert.config import load_config

    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(
        f"preset: tiny\nname: !!python/object/apply:builtins.open ['{marker}', 'w']\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError):
        load_config(path)
    assert not marker.exists()


def test_manifest_outputs_are_verified_naming_the_changed_file(tmp_path: Path) -> None:
    from vbert.core.manifest import file_sha256, verify_outputs, write_manifest

    (tmp_path / "tokens.jsonl").write_text('{"video_id": "a"}\n', encoding="utf-8")
    write_manifest(
        tmp_path,
        "tokenize",
        {},
        outputs={"tokens.jsonl": file_sha256(tmp_path / "tokens.jsonl"), "videos": 1},
    )
    verify_outputs(tmp_path)  # untouched: fine
    (tmp_path / "tokens.jsonl").write_text('{"video_id": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"tokens\.jsonl: does not match its manifest .*'tokenize' stage"):
        verify_outputs(tmp_path)
    (tmp_path / "tokens.jsonl").unlink()
    with pytest.raises(DataError, match=r"tokens\.jsonl: listed in .*manifest\.json but missing"):
        verify_outputs(tmp_path)
