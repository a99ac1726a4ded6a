"""Presets load into typed configs; typos and wrong types are refused with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vbert.config import PRESETS, Config, load_config, save_config
from vbert.errors import ConfigError


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_and_names_itself(name: str) -> None:
    config = load_config(name)
    assert isinstance(config, Config)
    assert config.name == name
    assert config.model.hidden_size % config.model.num_heads == 0


def test_presets_grow_from_tiny_to_paper() -> None:
    sizes = [load_config(n).model.hidden_size for n in PRESETS]
    assert sizes == sorted(sizes)
    paper = load_config("paper")
    assert (paper.vocab.k, paper.vocab.depth) == (12, 4)  # 20,736 visual words
    assert (paper.model.num_layers, paper.model.hidden_size, paper.model.num_heads) == (24, 1024, 16)
    assert (paper.video.fps, paper.video.clip_frames) == (20.0, 30)


def test_unknown_preset_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="preset 'tinny' does not exist.*tiny, small, base, paper"):
        load_config("tinny")


def test_typo_in_a_key_names_file_key_and_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  hiden_size: 64\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "model.hiden_size" in message and "hidden_size" in message
    assert "\n" not in message


def test_wrong_type_names_the_expected_type(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("pretrain:\n  steps: many\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pretrain\.steps: expected int, got 'many'"):
        load_config(path)


def test_bool_is_not_an_int_and_literal_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected int"):
        load_config("tiny", ["model.num_layers=true"])
    with pytest.raises(ConfigError, match="schedule: expected one of 'linear', 'cosine'"):
        load_config("tiny", ["pretrain.schedule=step"])


def test_int_is_accepted_for_float_and_overrides_apply() -> None:
    config = load_config("tiny", ["pretrain.lr=1", "model.num_layers=3"])
    assert config.pretrain.lr == 1.0 and isinstance(config.pretrain.lr, float)
    assert config.model.num_layers == 3


def test_user_file_can_start_from_a_preset_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("preset: tiny\nname: mine\nvocab:\n  k: 4\n", encoding="utf-8")
    config = load_config(path)
    assert (config.name, config.vocab.k, config.model.hidden_size) == (
        "mine",
        4,
        load_config("tiny").model.hidden_size,
    )
    saved = tmp_path / "saved.yaml"
    save_config(config, saved)
    assert load_config(saved) == config


def test_invalid_yaml_and_non_mapping_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listing)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_section_hash_changes_only_with_its_sections() -> None:
    a = load_config("tiny")
    b = load_config("tiny", ["model.num_layers=3"])
    assert a.section_hash("data", "video") == b.section_hash("data", "video")
    assert a.section_hash("model") != b.section_hash("model")


def test_scientific_notation_is_a_number_where_a_number_is_expected(tmp_path: Path) -> None:
    # YAML reads 1e-3 (no decimal point) as text; a float setting takes it as the number it means
    assert load_config("tiny", ["pretrain.lr=1e-3"]).pretrain.lr == 0.001
    assert load_config("tiny", ["pretrain.steps=2e3"]).pretrain.steps == 2000
    path = tmp_path / "mine.yaml"
    path.write_text("preset: tiny\npretrain:\n  lr: 2e-4\n", encoding="utf-8")
    assert load_config(path).pretrain.lr == 0.0002
    with pytest.raises(ConfigError, match=r"pretrain\.steps: expected int, got '1\.5e0'"):
        load_config("tiny", ["pretrain.steps=1.5e0"])  # not a whole number
    with pytest.raises(ConfigError, match=r"pretrain\.lr: expected float, got 'fast'"):
        load_config("tiny", ["pretrain.lr=fast"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.num_heads=5", r"model\.num_heads: 5 does not divide model\.hidden_size"),
        ("model.hidden_size=0", r"model\.hidden_size: must be at least 1, got 0"),
        ("pretrain.mask_prob=1.5", r"pretrain\.mask_prob: must be above 0 and at most 1, got 1\.5"),
        ("pretrain.random_frac=0.5", r"pretrain\.random_frac: mask_frac 0\.8 \+ random_frac 0\.5 exceed 1"),
        ("pretrain.regime_mix=[0, 0, 0]", r"pretrain\.regime_mix: must be three shares"),
        ("vocab.k=1", r"vocab\.k: must be at least 2"),
        ("vocab.depth=0", r"vocab\.depth: must be at least 1"),
        ("video.fps=0", r"video\.fps: must be positive"),
        ("pretrain.steps=0", r"pretrain\.steps: must be at least 1"),
        ("eval.retrieval_max_videos=-1", r"eval\.retrieval_max_videos: must be 0 \(no cap\) or more"),
    ],
)
def test_values_no_stage_can_use_are_refused_naming_the_override(override: str, message: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"^override '{override.replace('[', '.').replace(']', '.')}': {message}"
    ):
        load_config("tiny", [override])


def test_a_bad_value_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("preset: tiny\nmodel:\n  num_layers: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{path}: model\.num_layers: must be at least 1, got 0"):
        load_config(path, ["pretrain.steps=5"])  # an unrelated override is not blamed
