"""SynthCook: the world, narration noise and the zero-shot ban, generation, determinism, resume, cache."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from vbert.config import load_config
from vbert.core.stages import resolve
from vbert.data.dataset import Narration
from vbert.data.synthcook import (
    NOUNS,
    RECIPES,
    VERBS,
    generate_synthcook,
    load_action_clips,
    load_synthcook,
    narration_corpus,
)
from vbert.data.synthcook import generate as generate_module
from vbert.data.synthcook import narration as narration_module
from vbert.data.synthcook.generate import STAGE as GENERATE
from vbert.data.synthcook.plan import plan_action_clips, plan_video
from vbert.data.synthcook.render import apply_light
from vbert.data.synthcook.sprites import paste, sprite
from vbert.data.synthcook.world import FITS, check_world
from vbert.data.video import probe, read_clips, read_frames
from vbert.errors import DataError

MICRO = [
    "data.num_train_videos=3",
    "data.num_val_videos=2",
    "data.action_clips_per_class=4",
    "data.width=48",
    "data.height=48",
    "data.min_step_seconds=1.6",
    "data.max_step_seconds=2.2",
    "data.max_steps=4",
    "data.action_clip_seconds=1.6",
]
ZERO_SHOT = re.compile(r"now let me show you how to \w+ the \w+")


def micro_config(*extra: str):
    """A SynthCook config small enough to generate in a few seconds."""
    return load_config("tiny", MICRO + list(extra))


@pytest.fixture(scope="module")
def micro_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthcook")
    return generate_synthcook(root, micro_config(), show_progress=False, workers=1)


# ---------------------------------------------------------------- the world


def test_world_is_rich_and_consistent():
    check_world()
    assert len(NOUNS) >= 15 and len(VERBS) >= 12 and len(RECIPES) >= 10
    assert all(4 <= len(r.steps) <= 8 for r in RECIPES.values())
    assert any(s.keep < 1.0 for r in RECIPES.values() for s in r.steps)  # optional steps exist
    assert any(len(s.choices) > 1 for r in RECIPES.values() for s in r.steps)  # and alternatives
    assert any(len(FITS[v]) < len(NOUNS) for v in VERBS)  # not every verb fits every noun
    assert len({n.shape for n in NOUNS.values()}) >= 15
    assert len({n.colour for n in NOUNS.values()}) == len(NOUNS)


def test_sprites_differ_from_each_other():
    patches = {n: sprite(n, 32) for n in NOUNS}
    names = list(patches)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            (rgb_a, alpha_a), (rgb_b, alpha_b) = patches[a], patches[b]
            diff = np.abs(rgb_a * alpha_a[..., None] - rgb_b * alpha_b[..., None]).mean()
            assert diff > 10, f"{a} and {b} look alike"


def test_fast_blending_gives_the_pixels_of_the_plain_formulas():
    """paste and apply_light avoid broadcasting over RGB for speed; the float32 results must not change."""
    rng = np.random.default_rng(0)
    canvas = rng.uniform(0, 255, size=(40, 50, 3)).astype(np.float32)
    rgb = rng.uniform(0, 255, size=(16, 12, 3)).astype(np.float32)
    alpha = rng.uniform(0, 1, size=(16, 12)).astype(np.float32)
    for cx, cy in ((25.3, 20.0), (2.0, 3.0), (49.0, 38.5)):  # inside, and cut by two corners
        plain, fast = canvas.copy(), canvas.copy()
        h, w = alpha.shape
        x0, y0 = round(cx - w / 2), round(cy - h / 2)
        sx, sy = slice(max(0, x0), min(50, x0 + w)), slice(max(0, y0), min(40, y0 + h))
        a = alpha[sy.start - y0 : sy.stop - y0, sx.start - x0 : sx.stop - x0, None]
        plain[sy, sx] = (
            plain[sy, sx] * (1 - a) + rgb[sy.start - y0 : sy.stop - y0, sx.start - x0 : sx.stop - x0] * a
        )
        paste(fast, (rgb, alpha), cx, cy)
        assert np.array_equal(plain, fast)
    view = (canvas * 1.2)[3:35, 4:44]  # a strided window, as the camera crop is
    gain = np.float32(1.07) * np.array([0.95, 1.0, 1.04], dtype=np.float32)
    assert np.array_equal(apply_light(view, gain), np.clip(view * gain, 0, 255).astype(np.uint8))


def test_recipe_steps_keep_order_but_vary():
    data = load_config("tiny").data
    tellings = {}
    for i in range(120):
        plan = plan_video(0, "training", i, data)
        recipe = RECIPES[plan.recipe]
        slot = -1
        for step in plan.steps:  # each step must match a later slot of the recipe than the one before
            later = [
                k for k, s in enumerate(recipe.steps) if k > slot and (step.verb, step.noun) in s.choices
            ]
            assert later, f"{plan.video_id}: {step.verb} {step.noun} out of recipe order"
            slot = later[0]
        assert 4 <= len(plan.steps) <= data.max_steps
        assert all(
            data.min_step_seconds - 0.01 <= s.end - s.start <= data.max_step_seconds + 0.01
            for s in plan.steps
        )
        tellings.setdefault(plan.recipe, set()).add(tuple((s.verb, s.noun) for s in plan.steps))
    assert len(tellings) >= 10
    assert sum(len(t) > 1 for t in tellings.values()) >= 5  # the same dish is cooked differently


# ---------------------------------------------------------------- narration


def test_narration_is_word_level_lower_case_and_timed():
    data = load_config("tiny").data
    for i in range(40):
        plan = plan_video(3, "training", i, data)
        spoken = narration_module.narrate(plan)
        assert len(spoken["text"]) == len(spoken["start"]) == len(spoken["end"]) > 0
        assert all(re.fullmatch(r"[a-z]+", w) for w in spoken["text"])
        starts, ends = np.array(spoken["start"]), np.array(spoken["end"])
        assert np.all(starts < ends) and np.all(np.diff(starts) > 0) and ends[-1] <= plan.duration
        assert len(Narration(spoken["text"], spoken["start"], spoken["end"]).sentences()) >= 2


def test_narration_mentions_steps_with_noise():
    data = load_config("tiny").data
    verb_words = {v: {w for s in spec.synonyms for w in s} for v, spec in VERBS.items()}
    noun_words = {n: {w for s in spec.synonyms for w in s.split()} for n, spec in NOUNS.items()}
    mentioned = steps = fillers = early = 0
    for i in range(150):
        plan = plan_video(1, "training", i, data)
        spoken = narration_module.narrate(plan)
        words = spoken["text"]
        fillers += sum(w in {"um", "uh"} for w in words)
        for step in plan.steps:
            steps += 1
            near = [w for w, s in zip(words, spoken["start"]) if step.start - 2.5 <= s <= step.end + 2.5]
            if set(near) & verb_words[step.verb] and set(near) & noun_words[step.noun]:
                mentioned += 1
            first = next((s for w, s in zip(words, spoken["start"]) if w in noun_words[step.noun]), None)
            early += first is not None and first < step.start
    assert len(narration_module.STEP_TEMPLATES) >= 20
    assert 0.45 < mentioned / steps < 0.95  # often, but not always (missing narration, drift)
    assert fillers > 0 and early > 0


def test_zero_shot_template_never_occurs():
    data = load_config("tiny").data
    texts = [
        " ".join(narration_module.narrate(plan_video(s, "training", i, data))["text"])
        for s in range(3)
        for i in range(200)
    ]
    texts += narration_corpus(200, seed=5)
    assert texts and not any(ZERO_SHOT.search(t) for t in texts)
    assert not any("show you how to" in t for t in texts)


def test_zero_shot_guard_fires(monkeypatch):
    monkeypatch.setattr(narration_module, "STEP_TEMPLATES", ("now let me show you how to {v} the {n}",))
    monkeypatch.setattr(narration_module, "PARTIAL_TEMPLATES", ("now let me show you how to {v} the {n}",))
    plan = plan_video(0, "training", 0, load_config("tiny").data)
    with pytest.raises(AssertionError, match="zero-shot"):
        narration_module.narrate(plan)


def test_narration_corpus_is_cheap_text():
    sentences = narration_corpus(30, seed=0)
    assert len(sentences) > 60 and all(isinstance(s, str) and s == s.lower() for s in sentences)
    assert sentences == narration_corpus(30, seed=0) and sentences != narration_corpus(30, seed=1)


# ---------------------------------------------------------------- generated folder


def test_generated_folder_matches_its_format(micro_root):
    config = micro_config()
    names = {p.name for p in micro_root.iterdir()}
    assert {
        "videos",
        "annotations.json",
        "narrations.json",
        "action_clips",
        "action_clips.json",
        "world.json",
        "manifest.json",
    } <= names
    database = json.loads((micro_root / "annotations.json").read_text(encoding="utf-8"))["database"]
    assert sorted(v["subset"] for v in database.values()) == ["training"] * 3 + ["validation"] * 2
    for video_id, entry in database.items():
        assert {"annotations", "duration", "recipe_type", "subset", "video_url"} <= set(entry)
        for ann in entry["annotations"]:
            assert {"id", "segment", "sentence", "sentences", "verb", "noun", "occluded"} <= set(ann)
            assert 0 <= ann["segment"][0] < ann["segment"][1] <= entry["duration"]
            assert ann["noun"] in FITS[ann["verb"]] and ann["sentence"] == ann["sentences"][0]
            # every annotator names the ingredient, each in words of their own
            assert len(ann["sentences"]) == config.data.captions_per_segment
            assert all(ann["noun"] in ref for ref in ann["sentences"])
        info = probe(micro_root / "videos" / f"{video_id}.mp4")
        assert info.frame_count == round(entry["duration"] * config.data.fps)
        assert (info.width, info.height) == (48, 48)
    manifest = json.loads((micro_root / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["complete"] and manifest["videos"] == 5 and manifest["failures"] == []


def test_load_synthcook_gives_dataset_with_narration(micro_root):
    dataset = load_synthcook(micro_root)
    assert len(dataset.split("training")) == 3 and len(dataset.split("validation")) == 2
    assert dataset.failures == [] and dataset.verbs == list(VERBS)
    record = dataset.split("training")[0]
    assert record.path.is_file() and record.narration is not None and record.segments
    clips = read_clips(record.path, fps=20.0, clip_frames=30, size=32)
    assert clips.frames.shape[1:] == (30, 32, 32, 3)
    assert len(clips) == round(record.duration * 20) // 30


def test_action_clips_labelled_balanced_and_disjoint(micro_root):
    clips = load_action_clips(micro_root)
    assert len(clips) == 4 * len(VERBS)
    train = {c.id for c in clips if c.subset == "training"}
    val = {c.id for c in clips if c.subset == "validation"}
    assert train and val and not train & val
    for verb in VERBS:
        subsets = {c.subset for c in clips if c.verb == verb}
        assert subsets == {"training", "validation"}
    for clip in clips:
        assert clip.noun in FITS[clip.verb] and clip.path.is_file()
        assert len(read_clips(clip.path, fps=20.0, clip_frames=30, size=32)) == 1
    # nouns are spread: with 4 clips per verb, no noun dominates
    many = plan_action_clips(0, load_config("tiny").data)
    counts = {n: sum(c.noun == n for c in many) for n in NOUNS}
    assert min(counts.values()) >= 4 and max(counts.values()) <= 3 * min(counts.values())


def test_same_seed_same_data_other_seed_other_data(micro_root, tmp_path):
    again = generate_synthcook(tmp_path / "again", micro_config(), show_progress=False, workers=2)
    for name in ("annotations.json", "narrations.json", "action_clips.json"):
        assert (again / name).read_text(encoding="utf-8") == (micro_root / name).read_text(encoding="utf-8")
    a, _ = read_frames(micro_root / "videos" / "sc_val_00001.mp4")
    b, _ = read_frames(again / "videos" / "sc_val_00001.mp4")
    assert np.array_equal(a, b)
    other = generate_synthcook(tmp_path / "other", micro_config("seed=1"), show_progress=False, workers=1)
    assert (other / "annotations.json").read_text(encoding="utf-8") != (
        micro_root / "annotations.json"
    ).read_text(encoding="utf-8")


def test_resume_keeps_finished_videos_and_records_failures(tmp_path, monkeypatch):
    config = micro_config("data.action_clips_per_class=1", "data.num_val_videos=0")
    root = generate_synthcook(tmp_path / "sc", config, show_progress=False, workers=1)
    kept = root / "videos" / "sc_train_00000.mp4"
    before = kept.stat().st_mtime_ns
    (root / "videos" / "sc_train_00001.mp4").unlink()
    (root / "manifest.json").unlink()  # as if interrupted ...
    (root / "videos" / ".tmp-123-sc_train_00001.mp4").write_bytes(b"half a video")  # ... mid-write
    real = generate_module.render_timeline

    def broken(items, duration, width, height, fps, seed):
        if seed[:3] == [0, 0, 2]:  # video sc_train_00002 fails to render
            raise RuntimeError("renderer crashed")
        return real(items, duration, width, height, fps, seed)

    monkeypatch.setattr(generate_module, "render_timeline", broken)
    (root / "videos" / "sc_train_00002.mp4").unlink()
    generate_synthcook(root, config, show_progress=False, workers=1)
    assert kept.stat().st_mtime_ns == before  # finished work was not redone
    assert (root / "videos" / "sc_train_00001.mp4").is_file()
    assert not list((root / "videos").glob(".tmp-*"))
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    assert [f["item"] for f in manifest["failures"]] == ["sc_train_00002"]
    assert "renderer crashed" in manifest["failures"][0]["reason"]
    database = json.loads((root / "annotations.json").read_text(encoding="utf-8"))["database"]
    assert sorted(database) == ["sc_train_00000", "sc_train_00001"]


def test_other_settings_in_the_same_folder_render_every_file_again(tmp_path, capsys):
    small = ["data.num_train_videos=1", "data.num_val_videos=0", "data.action_clips_per_class=1"]
    root = generate_synthcook(tmp_path / "sc", micro_config(*small), show_progress=False, workers=1)
    video, clip = root / "videos" / "sc_train_00000.mp4", sorted((root / "action_clips").glob("*.mp4"))[0]
    assert probe(video).width == 48 and probe(clip).width == 48
    (root / "videos" / "sc_train_00099.mp4").write_bytes(b"left by the old settings")
    # same frame counts (durations do not depend on the size): only the recorded settings tell them apart
    generate_synthcook(
        root, micro_config(*small, "data.width=32", "data.height=32"), show_progress=False, workers=1
    )
    assert "rendered with other settings" in capsys.readouterr().out
    assert probe(video).width == 32 and probe(clip).width == 32
    assert not (root / "videos" / "sc_train_00099.mp4").exists()
    assert json.loads((root / "manifest.json").read_text(encoding="utf-8"))["config"]["data"]["width"] == 32


def test_a_folder_that_is_not_a_synthcook_dataset_is_never_written_over_or_deleted(tmp_path):
    from vbert.cli import main

    other = tmp_path / "data"
    (other / "youcook2").mkdir(parents=True)
    (other / "youcook2" / "annotations.json").write_text("{}", encoding="utf-8")
    args = ["generate", "--preset", "tiny", "--out", str(other), "--set", "data.num_train_videos=1"]
    assert main([*args, "--force"]) == 2
    assert main(args) == 2
    assert (other / "youcook2" / "annotations.json").read_text(encoding="utf-8") == "{}"  # untouched
    with pytest.raises(DataError, match="is a file"):
        generate_synthcook(other / "youcook2" / "annotations.json", micro_config(), show_progress=False)
    with pytest.raises(DataError, match=r"not part of a SynthCook dataset \(youcook2\)"):
        generate_synthcook(other, micro_config(), show_progress=False)


def test_cached_synthcook_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("VBERT_CACHE", str(tmp_path / "cache"))
    config = micro_config("data.num_train_videos=1", "data.num_val_videos=0", "data.action_clips_per_class=1")
    first = resolve(GENERATE, config)
    monkeypatch.setattr(generate_module, "generate_synthcook", lambda *a, **k: pytest.fail("rebuilt"))
    assert resolve(GENERATE, config) == first
    assert first.parent == tmp_path / "cache" and len(load_action_clips(first)) == len(VERBS)


def test_cli_and_pipeline_stage(tmp_path):
    from vbert.cli import main
    from vbert.data.synthcook.generate import run_stage

    overrides = [
        a
        for o in MICRO + ["data.num_train_videos=1", "data.num_val_videos=1", "data.action_clips_per_class=1"]
        for a in ("--set", o)
    ]
    assert (
        main(["generate", "--preset", "tiny", *overrides, "--out", str(tmp_path / "cli"), "--workers", "1"])
        == 0
    )
    assert len(load_synthcook(tmp_path / "cli").videos) == 2
    config = micro_config("data.num_train_videos=1", "data.num_val_videos=1", "data.action_clips_per_class=1")
    summary = run_stage(config, {}, tmp_path / "run" / "synthcook", force=False)
    assert summary["videos"] == 2 and summary["action_clips"] == len(VERBS) and summary["failures"] == 0
    assert summary["seconds"] > 0 and (tmp_path / "run" / "synthcook" / "manifest.json").is_file()


def test_reference_captions_are_an_annotators_grammar_apart_from_the_narration():
    from vbert.data.synthcook.captions import DISHES, PLACES, check_grammar, references
    from vbert.data.synthcook.narration import STEP_TEMPLATES

    check_grammar()
    rng = np.random.default_rng(0)
    refs = [r for _ in range(200) for r in references("crack", "egg", "pancakes", 3, rng)]
    assert all("egg" in r for r in refs) and len(set(refs)) > 20  # many phrasings of one step
    with_dish = sum(any(d in r for d in DISHES["pancakes"]) for r in refs) / len(refs)
    with_place = sum(any(p.strip() in r for p in PLACES["crack"]) for r in refs) / len(refs)
    assert 0.6 < with_dish < 0.9 and 0.35 < with_place < 0.65  # DISH_SHARE 0.75, PLACE_SHARE 0.5
    spoken = {t.format(v="crack", ving="cracking", n="egg") for t in STEP_TEMPLATES}
    assert not spoken & set(refs)  # no reference is worded as the narration says it


def test_occlusion_hides_a_share_of_steps_and_changes_nothing_else_of_a_plan():
    plain, hidden = micro_config("data.occlusion_prob=0"), micro_config("data.occlusion_prob=0.4")
    steps = hidden_steps = 0
    for index in range(40):
        a, b = plan_video(0, "training", index, plain.data), plan_video(0, "training", index, hidden.data)
        assert [(s.verb, s.noun, s.start, s.end, s.references) for s in a.steps] == [
            (s.verb, s.noun, s.start, s.end, s.references) for s in b.steps
        ]
        assert not any(s.occluded for s in a.steps)
        steps += len(b.steps)
        hidden_steps += sum(s.occluded for s in b.steps)
    assert 0.3 < hidden_steps / steps < 0.5


def test_an_occluded_step_shows_the_cloth_not_the_action():
    from vbert.data.synthcook.render import TimelineItem, render_timeline

    items = [TimelineItem("cut", "tomato", 0.0, 2.0)]
    seen = render_timeline(items, 2.0, 64, 64, 10.0, 3)
    hidden = render_timeline([TimelineItem("cut", "tomato", 0.0, 2.0, occluded=True)], 2.0, 64, 64, 10.0, 3)
    red = lambda frames: ((frames[..., 0] > 180) & (frames[..., 1] < 80)).mean()  # noqa: E731 - the tomato
    assert red(seen) > 0.02 and red(hidden) < red(seen) / 5
