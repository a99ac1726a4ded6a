"""`vbert run` end to end on a very small SynthCook with broken items: every stage, the report, re-runs.

One run (module fixture) goes through every stage on a dataset where some videos are corrupt,
empty, too short or missing, one narration is empty, one is not ASCII, one is malformed, and one
annotation lacks a field. The tests check that it finished on the rest, that the report has the
tables, figures, config, versions and the list of what was left out, that the result files hold
numbers in their ranges and counts of what the run contains, that a second run skips everything,
that a changed input reruns what depends on it (and nothing else), that `--force` reruns, that the
README's library examples run against it, that every `vbert eval` task runs on it, and that killed,
stopped or interrupted (Ctrl-C) runs resume.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from micro_run import micro_config
from safetensors.torch import load_file

from vbert.config import Config, load_config
from vbert.core.manifest import file_sha256
from vbert.data.video import write_video
from vbert.errors import DataError
from vbert.features.store import FeatureStore
from vbert.pipeline import runner as pipeline
from vbert.tasks.artifacts import Artifacts, masked_text_steps
from vbert.tasks.stage import text_only_ahead

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# What the fixture breaks, and words the report must give as the reason.
BROKEN = {
    "sc_train_00000": "corrupt",  # garbage bytes after an MP4 header
    "sc_train_00001": "sc_train_00001.mp4",  # zero bytes: the reason names the file
    "sc_train_00002": "too short",  # 0.6 s, shorter than one 1.5 s clip
    "sc_train_00003": "no video file",  # deleted
    "sc_train_00004": "missing field(s) segment",  # an annotation without its segment
    "sc_train_00006": "no usable narration",  # empty narration: used as video only
    "sc_train_00008": "caption entry is missing end",  # malformed narration
}
NON_ASCII = "sc_train_00007"


def break_dataset(root: Path) -> None:
    """Damage a generated SynthCook folder in every way the pipeline must survive."""
    videos = root / "videos"
    (videos / "sc_train_00000.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    (videos / "sc_train_00001.mp4").write_bytes(b"")
    write_video(videos / "sc_train_00002.mp4", np.zeros((12, 48, 48, 3), np.uint8), fps=20)
    (videos / "sc_train_00003.mp4").unlink()
    annotations = json.loads((root / "annotations.json").read_text(encoding="utf-8"))
    del annotations["database"]["sc_train_00004"]["annotations"][0]["segment"]
    for ann in annotations["database"]["sc_train_00005"]["annotations"]:
        ann.pop("verb"), ann.pop("noun")  # labels are then read from the sentence
    (root / "annotations.json").write_text(json.dumps(annotations), encoding="utf-8")
    narrations = json.loads((root / "narrations.json").read_text(encoding="utf-8"))
    narrations["sc_train_00006"] = {"text": [], "start": [], "end": []}
    accents = ["crème", "brûlée", "jalapeño", "🍅", "日本"]
    entry = narrations[NON_ASCII]
    entry["text"] = [accents[i % len(accents)] if i % 3 == 0 else w for i, w in enumerate(entry["text"])]
    narrations["sc_train_00008"] = {"text": ["add", "salt"], "start": [0.0, 0.5]}
    (root / "narrations.json").write_text(json.dumps(narrations, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path, list[pipeline.StageResult]]:
    """The whole pipeline on the broken micro dataset: (config, run folder, stage results)."""
    folder = tmp_path_factory.mktemp("e2e")
    config = micro_config(folder)
    out = folder / "run"
    pipeline.run_pipeline(config, out, only=["generate"])
    break_dataset(out / "synthcook")
    return config, out, pipeline.run_pipeline(config, out)


def _stamps(run_dir: Path) -> dict[str, int]:
    return {s.out: (run_dir / s.out / "manifest.json").stat().st_mtime_ns for s in pipeline.STAGES}


def test_every_stage_runs_and_the_report_has_tables_figures_config_and_versions(run) -> None:
    config, out, results = run
    assert [r.name for r in results] == [s.name for s in pipeline.STAGES]
    assert [r.status for r in results][1:] == ["ran"] * (len(results) - 1)  # generate was done before
    for stage in pipeline.STAGES:
        assert json.loads((out / stage.out / "manifest.json").read_text(encoding="utf-8"))["complete"]
    report = (out / "report.md").read_text(encoding="utf-8")
    for heading in (
        "## Stages",
        "Table 1 analogue",
        "Table 3 analogue",
        "retrieval",
        "## Versions",
        "## Config",
    ):
        assert heading in report
    for row in (
        "VideoBERT, cross-modal",
        "text-only BERT, language prior",
        "supervised probe",
        "| VideoBERT + clip features |",
        "| VideoBERT alignment |",
    ):
        assert row in report
    for name in ("loss-curves.png", "visual-words.png", "text-to-video.png"):
        assert f"]({name})" in report
        image = __import__("matplotlib.image", fromlist=["imread"]).imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0  # a real picture
    assert re.search(r"- torch: \d", report) and "- vbert: " in report
    yaml_block = report.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert load_config(_write(out / "from-report.yaml", yaml_block)) == config
    for task in ("zero-shot", "captioning", "retrieval"):
        assert (out / "eval" / f"{task}.json").is_file()
    captions = json.loads((out / "eval" / "captioning.json").read_text(encoding="utf-8"))
    assert captions["num_val"] > 0 and len(captions["rows"]) == 3
    assert all(set(row["scores"]) >= {"BLEU-4", "CIDEr", "ROUGE-L"} for row in captions["rows"])


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_broken_items_are_skipped_and_the_report_says_why(run) -> None:
    _, out, _ = run
    report = (out / "report.md").read_text(encoding="utf-8")
    section = report.split("## What was left out, and why", 1)[1].split("\n## ", 1)[0]
    for item, reason in BROKEN.items():
        lines = [line for line in section.splitlines() if f"| {item} |" in line]
        assert lines and any(reason in line for line in lines), (item, lines)
        reasons = [line.split("|")[3].strip() for line in lines]  # | item | stage | reason |
        assert len(reasons) == len(set(reasons)), lines  # a failure met by several stages is listed once
    assert "sc_train_00005" not in section and NON_ASCII not in section  # these were used
    store = FeatureStore(out / "features")
    assert not {"sc_train_00000", "sc_train_00001", "sc_train_00002", "sc_train_00003"} & set(store.videos())
    tokens = {
        json.loads(line)["video_id"]: json.loads(line)
        for line in (out / "tokenize" / "tokens.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert "sc_train_00004" not in tokens
    assert all(s["text"] == "" for s in tokens["sc_train_00006"]["sentences"])  # video-only material
    text = " ".join(s["text"] for s in tokens[NON_ASCII]["sentences"])
    assert text.strip() and text.isascii()  # cleaned to ASCII words, not dropped
    assert {"sc_train_00005", "sc_train_00009", "sc_val_00000"} <= set(tokens)


def test_a_second_run_skips_every_stage_and_rewrites_nothing(run) -> None:
    config, out, first = run
    before = _stamps(out)
    results = pipeline.run_pipeline(config, out)
    assert [r.status for r in results] == ["skipped"] * len(pipeline.STAGES)
    assert _stamps(out) == before
    assert [r.summary for r in results][1:] == [r.summary for r in first][
        1:
    ]  # the numbers of the run that made them
    assert "skipped (finished earlier" in (out / "report.md").read_text(encoding="utf-8")


def test_a_changed_input_reruns_what_depends_on_it_and_force_reruns(run, tmp_path: Path) -> None:
    config, out, _ = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    upto = ["generate", "extract", "vocab", "tokenize", "pretrain"]
    before = _stamps(copy)
    forced = pipeline.run_pipeline(config, copy, force=True, only=["tokenize"])
    assert [r.status for r in forced] == ["ran"]
    # the same tokens again, byte for byte: pipeline.json says tokenize changed, and pretrain, which
    # compares the token file itself, keeps its model
    results = pipeline.run_pipeline(config, copy, only=upto)
    assert {r.status for r in results} == {"skipped"} and results[-1].changed == ["tokenize"]
    assert _stamps(copy)["pretrain"] == before["pretrain"]
    # other visual words (k = 2): the vocabulary, the tokens and the model are made again
    config = micro_config(tmp_path, "vocab.k=2")
    results = pipeline.run_pipeline(config, copy, only=upto)
    assert {r.name: r.status for r in results} == {
        "generate": "skipped",
        "extract": "skipped",
        "vocab": "ran",
        "tokenize": "rerun",
        "pretrain": "rerun",
    }
    assert results[-1].changed == ["tokenize", "vocab"]
    after = _stamps(copy)
    assert after["pretrain"] != before["pretrain"]
    assert all(after[k] == before[k] for k in ("synthcook", "features"))
    manifest = json.loads((copy / "pretrain" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["inputs"]["tokens"] == file_sha256(copy / "tokenize" / "tokens.jsonl")
    again = pipeline.run_pipeline(config, copy, only=upto)
    assert {r.status for r in again} == {"skipped"}
    forced = pipeline.run_pipeline(config, copy, force=True, only=["vocab"])
    assert [r.status for r in forced] == ["ran"] and _stamps(copy)["vocab"] != after["vocab"]


def test_a_changed_training_setting_retrains_and_a_setting_that_only_runs_it_does_not(
    run, tmp_path: Path
) -> None:
    _, out, _ = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    weights = (copy / "pretrain" / "videobert.safetensors").read_bytes()
    kept = micro_config(tmp_path, "pretrain.keep_checkpoints=5", "pretrain.log_every=4")
    assert [r.status for r in pipeline.run_pipeline(kept, copy, only=["pretrain"])] == ["skipped"]
    # another learning rate: trained again from step 0, not "resumed" from the finished run's last step
    other = micro_config(tmp_path, "pretrain.lr=0.001")
    assert [r.status for r in pipeline.run_pipeline(other, copy, only=["pretrain"])] == ["ran"]
    steps = [
        json.loads(line)["step"]
        for line in (copy / "pretrain" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert steps == [2, 4, 6, 8]
    assert (copy / "pretrain" / "videobert.safetensors").read_bytes() != weights
    manifest = json.loads((copy / "pretrain" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["pretrain"]["lr"] == 0.001


def test_eval_refuses_a_model_whose_visual_words_are_not_those_of_the_tokens(
    run, tmp_path: Path, capsys
) -> None:
    from vbert.cli import main

    _, out, _ = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    args = [
        "eval",
        "retrieval",
        "--preset",
        str(out.parent / "micro.yaml"),
        "--model",
        str(out / "pretrain"),
        "--features",
        str(out / "features"),
        "--out",
        str(tmp_path / "eval"),
    ]
    # another vocabulary of the same size (other clusters): the word ids mean other clips
    pipeline.run_pipeline(
        micro_config(tmp_path, "vocab.max_iter=1", "vocab.n_init=1"), copy, only=["vocab", "tokenize"]
    )
    assert file_sha256(copy / "vocab" / "vocab.safetensors") != file_sha256(
        out / "vocab" / "vocab.safetensors"
    )
    capsys.readouterr()
    assert main([*args, "--tokens", str(copy / "tokenize")]) == 2
    assert "another vocabulary file" in capsys.readouterr().err
    # another size (k = 2: 4 words for a model of 9)
    pipeline.run_pipeline(micro_config(tmp_path, "vocab.k=2"), copy, only=["vocab", "tokenize"])
    assert main([*args, "--tokens", str(copy / "tokenize")]) == 2
    err = capsys.readouterr().err
    assert "knows 9 visual words" in err and "vocabulary of 4" in err and "Traceback" not in err


def test_other_decoding_settings_in_a_run_folder_extract_again(run, tmp_path: Path, capsys) -> None:
    _, out, _ = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    other = micro_config(tmp_path, "video.crop_size=24")
    results = pipeline.run_pipeline(other, copy, only=["extract"])
    assert [r.status for r in results] == ["ran"]  # not "holds features made with different settings"
    assert "extracting again" in capsys.readouterr().out
    spec = json.loads((copy / "features" / "extract-spec.json").read_text(encoding="utf-8"))
    assert spec["video"]["crop_size"] == 24 and FeatureStore(copy / "features").videos()


def test_unknown_stage_and_broken_state_file_are_clear_errors(run, tmp_path: Path) -> None:
    config, _, _ = run
    stages = ", ".join(stage.name for stage in pipeline.STAGES)
    with pytest.raises(DataError, match=rf"^unknown stage\(s\) pretrian; the stages are {stages}$"):
        pipeline.run_pipeline(config, tmp_path, only=["pretrian"])
    assert not (tmp_path / "config.yaml").exists()  # refused before anything was written
    (tmp_path / "pipeline.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"pipeline\.json: .*delete it to let every stage check itself$"):
        pipeline.run_pipeline(config, tmp_path, only=["generate"])


def test_artifacts_changed_after_their_stage_or_from_another_config_are_refused(run, tmp_path: Path) -> None:
    from vbert.pretraining.saved import load_pretrained

    config, out, _ = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    tokens = copy / "tokenize" / "tokens.jsonl"
    tokens.write_text(
        tokens.read_text(encoding="utf-8").replace('"sc_val_00000"', '"sc_val_99999"'), encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"tokens\.jsonl: does not match its manifest"):
        pipeline.run_pipeline(config, copy, only=["pretrain"])
    weights = copy / "pretrain" / "videobert.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x80\x7f")  # one weight edited by hand
    with pytest.raises(DataError, match=r"videobert\.safetensors: does not match its manifest"):
        load_pretrained(copy / "pretrain")
    # tokens made with the 3^2 = 9 words of this config, read by a config of another vocabulary (2^2)
    from vbert.pretraining.stage import run_pretraining

    other = micro_config(tmp_path, "vocab.k=2")
    with pytest.raises(DataError, match=r"tokenize.*3\^2 = 9 visual words, but this config expects 4"):
        run_pretraining(other, out / "tokenize", tmp_path / "p")


def _readme_blocks() -> list[str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using vbert as a library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_readme_library_examples_run_against_a_finished_run(run, tmp_path: Path, monkeypatch) -> None:
    _, out, _ = run
    blocks = _readme_blocks()
    assert len(blocks) >= 6  # resolve a stage, load, tokenize a video, score a sentence, export, describe
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo").symlink_to(out)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (the README's own code)
    tokens = {
        json.loads(line)["video_id"]: json.loads(line)
        for line in (out / "tokenize" / "tokens.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert namespace["tokens_dir"].resolve() == (out / "tokenize").resolve()
    assert len(namespace["words"]) == len(tokens["sc_val_00000"]["words"])
    assert len(namespace["scores"]) == len(namespace["sentences"])
    assert all(0.0 <= float(p) <= 1.0 for p in namespace["scores"])
    assert (tmp_path / "my-videobert" / "config.json").is_file()
    described = json.loads((tmp_path / "described" / "describe.json").read_text(encoding="utf-8"))
    assert described["videos"][0]["words"] == tokens["sc_val_00001"]["words"]
    assert described["videos"][0]["segments"][0]["caption"] is not None
    assert len(namespace["described"].videos[0].similar) == 3


def test_the_text_only_bert_trained_beside_the_other_tasks_is_the_one_trained_here(
    run, tmp_path: Path
) -> None:
    """The evaluate stage trains Table 1's text-only BERT in a child process: the same weights as here."""
    config, out, _ = run
    here = Artifacts(
        config, tokens=out / "tokenize", pretrained=out / "pretrain", text_only_dir=tmp_path / "text-only"
    ).text_only()
    beside = out / "eval" / "text-only-bert"
    logged = [
        json.loads(line) for line in (beside / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert logged[-1]["step"] == masked_text_steps(config.pretrain)
    ours, theirs = load_file(here / "videobert.safetensors"), load_file(beside / "videobert.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_vbert_run_starts_the_text_only_bert_beside_pretraining_unless_it_is_trained(
    run, tmp_path: Path, monkeypatch
) -> None:
    config, out, _ = run
    assert text_only_ahead(config, out) is None  # trained by the run: nothing to start
    other = tmp_path / "run"
    shutil.copytree(out / "tokenize", other / "tokenize")
    ahead = text_only_ahead(config, other)
    assert ahead is not None and ahead.args[2] == other / "eval" / "text-only-bert"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert text_only_ahead(config, other) is None  # under torchrun the child would join the group


def test_eval_at_a_kept_training_step_follows_the_model_over_training(run, tmp_path: Path, capsys) -> None:
    from vbert.cli import main

    _, out, _ = run
    args = [
        "eval",
        "zero-shot",
        "--preset",
        str(out.parent / "micro.yaml"),
        "--tokens",
        str(out / "tokenize"),
        "--features",
        str(out / "features"),
        "--model",
        str(out / "pretrain"),
        "--text-model",
        str(out / "eval" / "text-only-bert"),
        "--out",
        str(tmp_path),
    ]
    kept = sorted(p.name for p in (out / "pretrain" / "checkpoints").glob("step-*.pt"))
    assert kept == ["step-0000004.pt", "step-0000008.pt"]  # checkpoint_every 4, 8 steps, two kept
    assert main([*args, "--step", "8"]) == 0 and main([*args, "--step", "4"]) == 0
    final = json.loads((out / "eval" / "zero-shot.json").read_text(encoding="utf-8"))
    at8 = json.loads((tmp_path / "zero-shot-step8.json").read_text(encoding="utf-8"))
    at4 = json.loads((tmp_path / "zero-shot-step4.json").read_text(encoding="utf-8"))
    assert at8["step"] == 8 and at4["step"] == 4
    assert at8["rows"] == final["rows"]  # the last checkpoint holds the finished model's weights
    assert (tmp_path / "zero-shot-step4.md").read_text(encoding="utf-8").count("training step 4") == 1
    capsys.readouterr()
    assert main([*args, "--step", "6"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint of step 6" in err and "kept: 4, 8" in err and "Traceback" not in err

    args[1] = "zero-shot-steps"
    assert main(args) == 0
    steps = json.loads((tmp_path / "zero-shot-steps.json").read_text(encoding="utf-8"))
    assert [r["step"] for r in steps["rows"]] == [4, 8]
    for row, single in zip(steps["rows"], (at4, at8)):
        for name in ("VideoBERT, cross-modal", "VideoBERT, language prior"):
            assert row[name] == single["rows"][name]
    table = (tmp_path / "zero-shot-steps.md").read_text(encoding="utf-8")
    assert "| 4 |" in table and "| 8 |" in table and "cross-modal verb top-1" in table
    assert main([*args, "--step", "4"]) == 2 and "does not apply" in capsys.readouterr().err


def test_retrieval_over_more_videos_than_the_cap_ranks_a_seeded_sample(run, tmp_path: Path) -> None:
    from vbert.cli import main

    _, out, _ = run
    whole = json.loads((out / "eval" / "retrieval.json").read_text(encoding="utf-8"))
    assert whole["num_videos"] == whole["num_validation_videos"] == 4  # under the cap: every video
    args = [
        "eval",
        "retrieval",
        "--preset",
        str(out.parent / "micro.yaml"),
        "--model",
        str(out / "pretrain"),
        "--out",
        str(tmp_path),
        "--set",
        "eval.retrieval_max_videos=2",
    ]
    assert main(args) == 0
    sampled = json.loads((tmp_path / "retrieval.json").read_text(encoding="utf-8"))
    assert sampled["num_videos"] == 2 and sampled["num_validation_videos"] == 4
    assert 0 < sampled["num_queries"] < whole["num_queries"]  # the captions of the two sampled videos
    assert sampled["num_segments"] == sampled["num_queries"]  # each caption's own segment is a candidate
    assert sampled["rows"]["chance"]["R@1"] == pytest.approx(100 / sampled["num_segments"])
    assert "of a seeded sample of 2 of the 4 validation videos" in (tmp_path / "retrieval.md").read_text(
        encoding="utf-8"
    )


# ---------------------------------------------------------------- the numbers in the result files
#
# Bars that hold for any training recipe, each derived from what the run contains, not from a number
# measured once:
# - every accuracy is a percentage of the segments, videos or sentences it was taken over, so it is
#   k/n x 100 for a whole k between 0 and n, n counted in the run's token file;
# - chance rows equal their formula (100 x min(1, k / classes)), and a top-k over no more classes than
#   k is 100 for any model, since every class is among the k;
# - the cross-modal zero-shot row is not below chance by more than 3 binomial standard deviations of
#   an accuracy at chance over its n segments, 100 x sqrt(c (1 - c) / n): a model that guesses lands
#   there with probability about 0.1%, and below it the scoring is wrong (a label index, the [MASK]
#   slot read), not the model weak. On this run n is 10 (verbs) and 11 (nouns), so the top-1 bars
#   are below 0 and only noun top-5 binds (71.4 - 3 x 13.6 = 30.6; a video-blind model's worst top-5
#   here is 45.5: it leaves out the two nouns most segments have);
# - the supervised probe reads the committed course features, which separate verbs and nouns on their
#   own (tests/test_features.py), whatever the pretraining recipe: it must clear chance by the same 3
#   standard deviations;
# - BLEU, METEOR and ROUGE-L are fractions in [0, 1] and CIDEr-D is on COCO's 0-10 scale.
#
# Measured on this run: zero-shot cross-modal verb/noun top-1 20.0/0.0 (chance 20.0/14.3), top-5
# 100/54.5 (chance 100/71.4); probe top-1 90.0/72.7; captioning BLEU-4 0.00, METEOR 0.008, ROUGE-L
# 0.010-0.011, CIDEr 0.0004-0.0006 (the three rows); retrieval (caption to segment) in the closing note.


def _tokens_of(out: Path) -> list[dict]:
    lines = (out / "tokenize" / "tokens.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _segments_of(out: Path, subset: str) -> list[dict]:
    """The segments the tasks evaluate: those of `subset` with at least one visual word."""
    return [s for r in _tokens_of(out) if r["subset"] == subset for s in r["segments"] if s["video_words"]]


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _share_of(value: float, n: int) -> bool:
    """Whether `value` is k/n x 100 for a whole k in [0, n]: a percentage of n things counted."""
    k = value * n / 100
    return abs(k - round(k)) < 1e-6 and 0 <= round(k) <= n


def _chance(k: int, classes: int) -> float:
    return 100.0 * min(1.0, k / classes)


def _guess_floor(chance: float, n: int) -> float:
    """3 binomial standard deviations below `chance` (percent) for an accuracy over n examples."""
    c = chance / 100
    return 100 * (c - 3 * math.sqrt(c * (1 - c) / n))


def _check_accuracy_rows(rows: dict[str, dict[str, float]], counted: dict[str, int], classes: dict[str, int]):
    """Top-k columns of zero-shot style rows: shares of the segments counted, monotone in k, 100 when
    k covers every class, chance by its formula."""
    for name, row in rows.items():
        for column, value in row.items():
            kind, k = column.split()[0], int(column.rsplit("-", 1)[1])
            if name == "chance":
                assert value == pytest.approx(_chance(k, classes[kind])), (name, column)
                continue
            assert _share_of(value, counted[kind]), (name, column, value, counted[kind])
            if k >= classes[kind]:
                assert value == 100.0, (name, column)
        for kind in counted:
            columns = sorted((c for c in row if c.startswith(kind)), key=lambda c: int(c.rsplit("-", 1)[1]))
            assert [row[c] for c in columns] == sorted(row[c] for c in columns), (name, kind)


def _check_caption_scores(scores: dict[str, float | None]) -> None:
    assert set(scores) == {"BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
    for name in ("BLEU-3", "BLEU-4", "ROUGE-L"):
        assert 0.0 <= scores[name] <= 1.0, (name, scores)
    assert 0.0 <= scores["CIDEr"] <= 10.0, scores
    if shutil.which("java") is None:
        assert scores["METEOR"] is None  # reported as missing, with a warning
    else:
        assert 0.0 <= scores["METEOR"] <= 1.0, scores


def test_the_result_files_hold_numbers_in_their_ranges_and_counts_of_the_run(run) -> None:
    config, out, results = run
    val, train = _segments_of(out, "validation"), _segments_of(out, "training")
    zero = _read(out / "eval" / "zero-shot.json")
    verbs, nouns = zero["verbs"], zero["nouns"]
    assert zero["num_segments"] == len(val) > 0
    assert verbs == sorted(set(verbs)) and nouns == sorted(set(nouns)) and min(len(verbs), len(nouns)) >= 2
    counted = {"verb": sum(s["verb"] in verbs for s in val), "noun": sum(s["noun"] in nouns for s in val)}
    classes = {"verb": len(verbs), "noun": len(nouns)}
    assert min(counted.values()) > 0  # the validation segments whose label is in the label sets
    rows = zero["rows"]
    assert list(rows) == [
        "chance",
        "text-only BERT, language prior",
        "VideoBERT, language prior",
        "VideoBERT, cross-modal",
        "supervised probe on clip features",
    ]
    assert all(set(row) == {"verb top-1", "verb top-5", "noun top-1", "noun top-5"} for row in rows.values())
    _check_accuracy_rows(rows, counted, classes)
    for column, value in rows["VideoBERT, cross-modal"].items():
        n = counted[column.split()[0]]
        assert value >= _guess_floor(rows["chance"][column], n), (column, value, rows["chance"][column], n)
    for column in ("verb top-1", "noun top-1"):
        n = counted[column.split()[0]]
        ceiling = 2 * rows["chance"][column] - _guess_floor(rows["chance"][column], n)  # chance + 3 sd
        assert rows["supervised probe on clip features"][column] >= ceiling, (column, ceiling)

    captions = _read(out / "eval" / "captioning.json")
    assert captions["num_train"] == len(train) > 0 and captions["num_val"] == len(val)
    assert captions["references"] == [s["references"] for s in val]  # every reference of every segment
    assert [r["input"] for r in captions["rows"]] == [
        "clip features",
        "VideoBERT",
        "VideoBERT + clip features",
    ]
    for row in captions["rows"]:
        assert len(row["captions"]) == len(val) and all(isinstance(c, str) for c in row["captions"])
        _check_caption_scores(row["scores"])

    retrieval = _read(out / "eval" / "retrieval.json")
    videos = [r for r in _tokens_of(out) if r["subset"] == "validation"]
    assert (
        retrieval["num_videos"]
        == retrieval["num_validation_videos"]
        == len(videos)
        == config.data.num_val_videos
    )
    segments = [s for r in videos for s in r["segments"] if s["video_words"]]
    assert retrieval["num_queries"] == retrieval["num_segments"] == len(segments)  # caption -> own segment
    chance = retrieval["rows"]["chance"]
    assert chance == {f"R@{k}": _chance(k, len(segments)) for k in (1, 5, 10)}
    recall = retrieval["rows"]["VideoBERT alignment"]
    assert all(_share_of(v, retrieval["num_queries"]) for v in recall.values()), recall
    assert recall["R@1"] <= recall["R@5"] <= recall["R@10"], recall
    reader = retrieval["rows"]["reads verb and noun only, exactly"]  # its formula, from the token file
    shared = Counter((s["verb"], s["noun"]) for s in segments)
    for k in (1, 5, 10):
        expected = 100 * sum(min(1, k / shared[(s["verb"], s["noun"])]) for s in segments) / len(segments)
        assert reader[f"R@{k}"] == pytest.approx(expected)

    # the report's stage summary holds the numbers of these files
    summary = next(r.summary for r in results if r.name == "evaluate")
    cross, best = rows["VideoBERT, cross-modal"], captions["rows"][-1]["scores"]
    assert summary == {
        "zero-shot verb top-1": round(cross["verb top-1"], 1),
        "zero-shot noun top-1": round(cross["noun top-1"], 1),
        "captioning BLEU-4": round(100 * best["BLEU-4"], 2),
        "captioning CIDEr": round(best["CIDEr"], 3),
        "retrieval R@5": round(recall["R@5"], 1),
    }


# ---------------------------------------------------------------- every `vbert eval` task on the run


def _eval_args(out: Path, task: str, folder: Path, *extra: str) -> list[str]:
    """`vbert eval TASK` on the run's model (which brings the run's tokens and features)."""
    config = str(out.parent / "micro.yaml")
    return ["eval", task, "--preset", config, "--model", str(out / "pretrain"), "--out", str(folder), *extra]


def test_eval_forecasting_and_classification_on_the_run(run, tmp_path: Path, capsys) -> None:
    from vbert.cli import main

    _, out, _ = run
    assert main(_eval_args(out, "forecasting", tmp_path)) == 0
    assert main(_eval_args(out, "classification", tmp_path)) == 0
    printed = capsys.readouterr().out
    forecasting = _read(tmp_path / "forecasting.json")
    steps = [
        [s for s in r["segments"] if s["video_words"]] for r in _tokens_of(out) if r["subset"] == "validation"
    ]
    pairs = sum(max(0, len(v) - 1) for v in steps)  # a step with words followed by another
    assert forecasting["num_examples"] == pairs > 0 and f"{pairs} steps" in printed
    assert list(forecasting["rows"]) == [
        "forecast (VideoBERT)",
        "current step's words (same again)",
        "true next step's words (exact forecast)",
        "repeat the current step (labels)",
        "most common next step (training statistics)",
    ]
    for row in forecasting["rows"].values():
        assert set(row) == {"verb top-1", "noun top-1"} and all(0.0 <= v <= 100.0 for v in row.values())
    # visual words are compared one by one: at most 8 per next step (forecasting's max_words)
    words = sum(min(8, len(v[i + 1]["video_words"])) for v in steps for i in range(len(v) - 1))
    for key in ("word_accuracy", "word_accuracy_repeat_last"):
        assert _share_of(forecasting[key], words), (key, forecasting[key], words)

    classification = _read(tmp_path / "classification.json")
    videos = [r for r in _tokens_of(out) if r["subset"] in ("training", "validation")]
    labels = sorted({r["recipe_type"] for r in videos})
    val = [r for r in videos if r["subset"] == "validation"]
    assert classification["labels"] == labels and classification["chance"] == pytest.approx(100 / len(labels))
    confusion = np.array(classification["confusion"])
    assert confusion.shape == (len(labels), len(labels)) and confusion.sum() == len(val) > 0
    true = {label: sum(r["recipe_type"] == label for r in val) for label in labels}
    assert confusion.sum(axis=1).tolist() == [true[label] for label in labels]  # rows: the true recipe
    assert classification["accuracy"] == pytest.approx(100 * np.trace(confusion) / len(val))
    assert _share_of(classification["neighbour_precision@3"], 3 * len(val))  # 3 neighbours of each video
    assert "linear probe accuracy" in printed


def test_eval_captioning_with_beam_search_adds_beam_rows_and_keeps_the_greedy_ones(
    run, tmp_path: Path, capsys
) -> None:
    from vbert.cli import main

    config, out, _ = run
    assert main(_eval_args(out, "captioning", tmp_path, "--beam")) == 0
    table = capsys.readouterr().out
    beam = _read(tmp_path / "captioning.json")
    plain = _read(out / "eval" / "captioning.json")
    assert beam["num_val"] == plain["num_val"] and beam["references"] == plain["references"]
    for with_beam, greedy in zip(beam["rows"], plain["rows"], strict=True):
        assert with_beam["input"] == greedy["input"]
        # the same captioner (seeded, on the CPU) decodes greedily as in the run, and with a beam too
        assert with_beam["captions"] == greedy["captions"] and with_beam["scores"] == greedy["scores"]
        assert len(with_beam["beam_captions"]) == beam["num_val"]
        _check_caption_scores(with_beam["beam_scores"])
        assert f"| {greedy['input']}, beam {config.eval.caption_beam_size} |" in table


def test_eval_data_size_trains_on_fractions_of_the_run_and_caches_them_by_code(
    run, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Table 2 on the run's data: the stage cache's tokens, vocabulary and model are the run's.

    The run's WordPiece vocabulary is given to every fraction (`text.tokenizer`): 10% of this run's
    training videos is one video, whose narration alone lacks label words the table asks for.
    """
    from vbert.cli import main
    from vbert.core.stages import code_digest
    from vbert.tasks import action_table

    config, out, _ = run
    monkeypatch.setattr(action_table, "resolve", lambda stage, config: out / stage.out)
    monkeypatch.setenv("VBERT_CACHE", str(tmp_path / "cache"))

    def trained() -> dict[str, int]:
        """Each cached fraction model's last logged step, by the time its manifest was written."""
        return {
            str(entry.stat().st_mtime_ns): _read_jsonl(entry.parent / "model" / "metrics.jsonl")[-1]["step"]
            for entry in (tmp_path / "cache").glob("data-size-*/manifest.json")
        }

    args = [
        "eval",
        "data-size",
        "--preset",
        str(out.parent / "micro.yaml"),
        "--out",
        str(tmp_path / "eval"),
        "--set",
        f"text.tokenizer={out / 'pretrain' / 'tokenizer'}",
    ]
    assert main(args) == 0
    assert "100% (8 steps)" in capsys.readouterr().out
    rows = _read(tmp_path / "eval" / "data-size.json")
    # the same steps for every fraction (data, not compute, differs); the whole set is the run's own model
    assert [(r["fraction"], r["steps"]) for r in rows] == [(0.25, 8), (0.5, 8), (1.0, 8)]
    first = trained()  # the two smaller fractions, trained side by side in child processes
    assert sorted(first.values()) == [8, 8]
    zero = _read(out / "eval" / "zero-shot.json")
    val = _segments_of(out, "validation")
    counted = {
        "verb": sum(s["verb"] in zero["verbs"] for s in val),
        "noun": sum(s["noun"] in zero["nouns"] for s in val),
    }
    classes = {"verb": len(zero["verbs"]), "noun": len(zero["nouns"])}
    scores = {f"{100 * r['fraction']:.0f}%": {k: v for k, v in r.items() if " top-" in k} for r in rows}
    _check_accuracy_rows(scores, counted, classes)
    assert scores["100%"] == zero["rows"]["VideoBERT, cross-modal"]  # the same model, the same segments
    entries = sorted((tmp_path / "cache").glob("data-size-*"))
    train_videos = sum(r["subset"] == "training" for r in _tokens_of(out))
    subsets = {}
    for entry in entries:
        fraction = _read(entry / "manifest.json")["config"]["fraction"]
        kept = [json.loads(line) for line in (entry / "data" / "tokens.jsonl").read_text().splitlines()]
        subsets[fraction] = sum(r["subset"] == "training" for r in kept)
        assert sum(r["subset"] == "validation" for r in kept) == config.data.num_val_videos  # all stay
    assert subsets == {f: max(1, round(f * train_videos)) for f in (0.25, 0.5)}
    # run again: every fraction's model is reused; with other training code, every one is trained anew
    assert main(args) == 0 and trained() == first
    monkeypatch.setattr(action_table, "code_digest", lambda names: code_digest(names) + "+")
    assert main(args) == 0
    again = trained()
    assert len(again) == 4 and {k: again[k] for k in first} == first and sorted(again.values()) == [8] * 4
    assert _read(tmp_path / "eval" / "data-size.json") == rows  # the same code, retrained: the same numbers


def _read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default disposition."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_vbert_pretrain_checkpoints_and_exits_with_130(run, tmp_path: Path) -> None:
    """A real `vbert pretrain`, sent SIGINT as a terminal's Ctrl-C sends it (to the process group) once
    its first checkpoint is on disk: the signal handler is then installed, and with 100,000 steps to go
    the run cannot have finished."""
    _, out, _ = run
    folder = tmp_path / "pretrain"
    command = [
        sys.executable,
        "-m",
        "vbert",
        "pretrain",
        "--preset",
        str(out.parent / "micro.yaml"),
        "--data",
        str(out / "tokenize"),
        "--out",
        str(folder),
        "--set",
        "pretrain.steps=100000",
        "--set",
        "pretrain.checkpoint_every=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VBERT_QUIET": "1"}
    log = tmp_path / "stderr.txt"
    with open(log, "w", encoding="utf-8") as stderr:  # a file, not a pipe nobody reads while it trains
        job = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            # A test run started in the background (`make test &`) ignores SIGINT, and a child inherits
            # that; vbert keeps an ignored SIGINT ignored. A terminal's job does not ignore it.
            preexec_fn=_default_sigint,
        )
        try:
            first = folder / "checkpoints" / "latest.json"
            while not first.is_file() and job.poll() is None:  # the job's own progress, not its speed
                time.sleep(0.05)
            assert job.poll() is None, log.read_text(encoding="utf-8")[-2000:]
            os.killpg(job.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            job.wait(timeout=300)
        finally:
            if job.poll() is None:
                job.kill()
    err = log.read_text(encoding="utf-8")
    assert job.returncode == 130, err[-2000:]
    stopped = re.search(
        r"stopped by SIGINT after step (\d+) of 100000: a checkpoint of step \1 is in (\S+);", err
    )
    assert stopped and "Traceback" not in err, err[-2000:]
    step = int(stopped.group(1))
    assert Path(stopped.group(2)) == folder / "checkpoints" / f"step-{step:07d}.pt"
    assert _read(first) == {"step": step, "file": f"step-{step:07d}.pt"}
    assert not (folder / "manifest.json").exists()  # unfinished: the same command resumes it


# ---------------------------------------------------------------- killed runs resume

# Run in a child process: patch one function so that the process SIGKILLs itself at a chosen point
# of a stage (no clean-up, no finally blocks: what `kill -9` or a lost machine does), then run the
# pipeline. Threads are pinned to one so the child's arithmetic matches this process's bit for bit.
KILLER = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from vbert.pipeline import runner as pipeline
from vbert.config import load_config

config_path, run_dir, stage = sys.argv[1:4]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if stage == "extract":  # several small shards; killed right after the second one is on disk
    from vbert.features import store as feature_store
    real_init, real_flush, flushed = feature_store.FeatureWriter.__init__, feature_store.FeatureWriter.flush, []
    def init(self, folder, dim, rank=0, shard_size=4096):
        real_init(self, folder, dim, rank, 12)
    def flush(self):
        real_flush(self)
        flushed.append(1)
        if len(flushed) == 2:
            die()
    feature_store.FeatureWriter.__init__, feature_store.FeatureWriter.flush = init, flush
elif stage == "vocab":  # the vocabulary file is written, its manifest never is
    from vbert.visual_words import vocab as visual_vocab
    visual_vocab.write_manifest = lambda *a, **k: die()
elif stage == "pretrain":  # killed just after the first checkpoint
    from vbert.pretraining import trainer as train
    real_save = train.Trainer.save
    def save(self):
        real_save(self)
        die()
    train.Trainer.save = save
pipeline.run_pipeline(load_config(config_path), run_dir, only=[stage])
"""


def _run_killed(config_dir: Path, run_dir: Path, stage: str) -> None:
    script = config_dir / "killer.py"
    script.write_text(KILLER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VBERT_QUIET": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(config_dir / "micro.yaml"), str(run_dir), stage],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def _copy_stages(src: Path, dst: Path, folders: list[str]) -> None:
    dst.mkdir(parents=True)
    for name in folders:
        shutil.copytree(src / name, dst / name)


def _vocab_contents(run_dir: Path) -> tuple[dict, dict]:
    """(metadata, tensors as lists) of a run's vocabulary file (the header's key order is not fixed)."""
    from safetensors import safe_open

    with safe_open(str(run_dir / "vocab" / "vocab.safetensors"), framework="pt") as handle:
        return handle.metadata(), {k: handle.get_tensor(k).tolist() for k in handle.keys()}  # noqa: SIM118


def _tokens(run_dir: Path) -> str:
    return (run_dir / "tokenize" / "tokens.jsonl").read_text(encoding="utf-8")


def test_run_killed_during_extraction_resumes_without_redoing_finished_videos(run, tmp_path, monkeypatch):
    config, out, _ = run
    work = tmp_path / "run"
    _copy_stages(out, work, ["synthcook"])
    micro_config(tmp_path)
    _run_killed(tmp_path, work, "extract")
    assert not (work / "features" / "manifest.json").exists()
    finished = set(FeatureStore(work / "features").videos())
    assert finished  # the shards written before the kill are there
    from vbert.features import extract

    decoded: list[str] = []
    real = extract.ClipDecoding.__getitem__
    monkeypatch.setattr(
        extract.ClipDecoding,
        "__getitem__",
        lambda self, i: decoded.append(self.videos[i][0]) or real(self, i),
    )
    pipeline.run_pipeline(config, work, only=["generate", "extract", "vocab", "tokenize"])
    assert decoded and not finished & set(decoded)  # nothing finished was decoded again
    resumed, reference = FeatureStore(work / "features"), FeatureStore(out / "features")
    assert sorted(resumed.videos()) == sorted(reference.videos())
    for video in reference.videos():
        np.testing.assert_array_equal(resumed.clips_of(video)[0], reference.clips_of(video)[0])
    assert _tokens(work) == _tokens(out)  # the same result as the uninterrupted run


def test_run_killed_during_the_vocabulary_fits_again_and_keeps_the_features(run, tmp_path):
    config, out, _ = run
    work = tmp_path / "run"
    _copy_stages(out, work, ["synthcook", "features"])
    micro_config(tmp_path)
    features = (work / "features" / "manifest.json").stat().st_mtime_ns
    _run_killed(tmp_path, work, "vocab")
    assert (work / "vocab" / "vocab.safetensors").is_file() and not (
        work / "vocab" / "manifest.json"
    ).exists()
    results = pipeline.run_pipeline(config, work, only=["generate", "extract", "vocab", "tokenize"])
    assert [r.status for r in results] == ["skipped", "skipped", "ran", "ran"]
    assert (work / "features" / "manifest.json").stat().st_mtime_ns == features  # extraction not redone
    assert _vocab_contents(work) == _vocab_contents(out)  # the same tree as the uninterrupted run
    assert _tokens(work) == _tokens(out)


def test_run_killed_during_pretraining_resumes_from_its_checkpoint(run, tmp_path, monkeypatch):
    config, out, _ = run
    work = tmp_path / "run"
    _copy_stages(out, work, ["synthcook", "features", "vocab", "tokenize"])
    micro_config(tmp_path)  # the child trains its own WordPiece vocabulary: the same one (deterministic)
    _run_killed(tmp_path, work, "pretrain")
    checkpoints = sorted((work / "pretrain" / "checkpoints").glob("step-*.pt"))
    assert [c.name for c in checkpoints] == [f"step-{config.pretrain.checkpoint_every:07d}.pt"]
    assert not (work / "pretrain" / "manifest.json").exists()
    from vbert.pretraining import trainer as train

    steps: list[int] = []
    real = train.Trainer.train_step
    monkeypatch.setattr(train.Trainer, "train_step", lambda self, micro: steps.append(1) or real(self, micro))
    pipeline.run_pipeline(config, work, only=["pretrain"])
    assert len(steps) == config.pretrain.steps - config.pretrain.checkpoint_every  # finished steps kept
    weights = "pretrain/videobert.safetensors"
    assert (work / weights).read_bytes() == (out / weights).read_bytes()


# What `timeout`, a terminal's Ctrl-C or a scheduler does: a signal to the whole process group, here
# SIGTERM sent by the training process itself once step 3 is done. The child runs in a session of its own.
STOPPER = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from vbert.pretraining import trainer as train
from vbert.cli import main

real = train.Trainer._accumulate
def accumulate(self, metrics, micro):
    real(self, metrics, micro)
    if self.step == 3:
        os.killpg(0, signal.SIGTERM)
train.Trainer._accumulate = accumulate
sys.exit(main(["run", "--preset", sys.argv[1], "--out", sys.argv[2], "--only", "pretrain",
               "--set", "pretrain.num_workers=2"]))
"""


def test_run_stopped_by_sigterm_during_pretraining_checkpoints_that_step_and_resumes(run, tmp_path):
    config, out, _ = run
    work = tmp_path / "run"
    _copy_stages(out, work, ["synthcook", "features", "vocab", "tokenize"])
    micro_config(tmp_path)
    script = tmp_path / "stopper.py"
    script.write_text(STOPPER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VBERT_QUIET": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "micro.yaml"), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        start_new_session=True,
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr[-2000:]
    assert "stopped by SIGTERM after step 3 of 8: a checkpoint of step 3" in done.stderr
    checkpoints = sorted((work / "pretrain" / "checkpoints").glob("step-*.pt"))
    assert [c.name for c in checkpoints] == ["step-0000003.pt"]  # before the first scheduled one (4)
    assert not (work / "pretrain" / "manifest.json").exists()
    pipeline.run_pipeline(micro_config(tmp_path, "pretrain.num_workers=2"), work, only=["pretrain"])
    weights = "pretrain/videobert.safetensors"
    assert (work / weights).read_bytes() == (out / weights).read_bytes()  # as if never stopped


def test_pretrain_command_on_a_run_folders_tokens_uses_their_vocabulary_and_refuses_another(
    run, tmp_path, capsys
):
    from vbert.cli import main

    config, out, _ = run
    micro_config(tmp_path)
    args = [
        "pretrain",
        "--preset",
        str(tmp_path / "micro.yaml"),
        "--data",
        str(out / "tokenize"),
        "--device",
        "cpu",
    ]
    assert config.pretrain.visual_init == "centroids"
    assert main([*args, "--out", str(tmp_path / "p")]) == 0  # found out/vocab beside out/tokenize
    weights = "videobert.safetensors"
    assert (tmp_path / "p" / weights).read_bytes() == (out / "pretrain" / weights).read_bytes()  # = the run's
    other = tmp_path / "other.safetensors"
    other.write_bytes((out / "vocab" / "vocab.safetensors").read_bytes() + b" ")  # another file
    assert main([*args, "--out", str(tmp_path / "q"), "--vocab-file", str(other)]) == 2
    assert "not the visual vocabulary the tokens" in capsys.readouterr().err
