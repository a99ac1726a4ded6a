"""`vbert eval`: its tasks are listed, bad input fails with one clear line, results are written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vbert.cli import main
from vbert.pipeline import runner as pipeline
from vbert.tasks import stage as evaluate_stage
from vbert.tasks.cli import TASKS, write_result


@pytest.fixture
def scripted_zero_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' zero-shot runners are scripted: no text-only BERT is trained beside them."""
    monkeypatch.setattr(evaluate_stage, "_alongside", lambda *args: None)


def test_eval_lists_its_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert all(task in out for task in TASKS)
    from vbert.cli import COMMANDS

    summary = next(text for name, _, text in COMMANDS if name == "eval")  # the line of `vbert --help`
    assert summary.split(": ", 1)[1].split(", ") == list(TASKS)


def test_bad_template_is_one_clear_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        ["eval", "zero-shot", "--set", "eval.zero_shot_template=how to [MASK] it", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "exactly two" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing was built or written


def test_write_result_makes_json_and_markdown(tmp_path: Path) -> None:
    write_result(tmp_path, "demo", {"confusion": np.eye(2, dtype=np.int64), "acc": np.float32(0.5)}, "| a |")
    assert json.loads((tmp_path / "demo.json").read_text(encoding="utf-8")) == {
        "confusion": [[1, 0], [0, 1]],
        "acc": 0.5,
    }
    assert (tmp_path / "demo.md").read_text(encoding="utf-8").startswith("# demo")


def test_evaluate_stage_comes_after_pretrain() -> None:
    names = [s.name for s in pipeline.STAGES]
    assert "evaluate" in names and names.index("evaluate") > names.index("pretrain")


def test_evaluate_stage_keeps_finished_tasks_and_retries_only_a_failed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripted_zero_shot: None
) -> None:
    from vbert.config import load_config
    from vbert.core.manifest import read_manifest, write_manifest
    from vbert.errors import DataError, StageError
    from vbert.tasks import cli as tasks_cli

    calls: list[str] = []

    def runner(task: str, result: dict) -> object:
        def run(config, device, artifacts=None):
            calls.append(task)
            return result, f"| {task} |"

        return run

    def broken(config, device, artifacts=None):
        calls.append("captioning")
        raise ModuleNotFoundError("No module named 'pycocoevalcap'")

    zero = {"rows": {"VideoBERT, cross-modal": {"verb top-1": 40.04, "noun top-1": 70.46}}}
    captions = {"rows": [{"scores": {"BLEU-4": 0.01234, "CIDEr": 0.4567}}]}
    retrieval = {"rows": {"VideoBERT alignment": {"R@5": 55.55}}}
    monkeypatch.setitem(tasks_cli.RUNNERS, "zero-shot", runner("zero-shot", zero))
    monkeypatch.setitem(tasks_cli.RUNNERS, "captioning", broken)
    monkeypatch.setitem(tasks_cli.RUNNERS, "retrieval", runner("retrieval", retrieval))
    config, run = load_config("tiny"), tmp_path / "run"
    with pytest.raises(DataError, match="no synthcook/, features/, vocab/, tokenize/, pretrain/ here"):
        pipeline.run_pipeline(config, run, only=["evaluate"])
    assert calls == []  # refused before any task ran
    for folder in ("synthcook", "features", "vocab", "tokenize", "pretrain"):
        (run / folder).mkdir(parents=True)

    with pytest.raises(StageError, match=r"1 of 3 tasks failed \(captioning: ModuleNotFoundError"):
        pipeline.run_pipeline(config, run, only=["evaluate"])
    assert calls == ["captioning", "retrieval", "zero-shot"]  # the failure stopped no other task
    manifest = read_manifest(run / "eval")
    assert manifest["complete"] is False and [f["item"] for f in manifest["failures"]] == ["captioning"]
    assert sorted(manifest["outputs"]) == ["retrieval.json", "zero-shot.json"]
    report = (run / "report.md").read_text(encoding="utf-8")
    assert "the task failed (ModuleNotFoundError: No module named 'pycocoevalcap')" in report
    assert "| retrieval |" in report and "| captioning | evaluate |" in report  # table, and failure row

    # A finished task's file that changed since is not trusted; the failed task is retried.
    (run / "eval" / "retrieval.json").write_text('{"rows": {}}', encoding="utf-8")
    calls.clear()
    monkeypatch.setitem(tasks_cli.RUNNERS, "captioning", runner("captioning", captions))
    result = pipeline.run_pipeline(config, run, only=["evaluate"])[-1]
    assert calls == ["captioning", "retrieval"]
    assert result.summary == {
        "zero-shot verb top-1": 40.0,
        "zero-shot noun top-1": 70.5,
        "captioning BLEU-4": 1.23,
        "captioning CIDEr": 0.457,
        "retrieval R@5": 55.5,
    }
    manifest = read_manifest(run / "eval")
    assert manifest["complete"] is True and manifest["failures"] == []
    assert "the task failed" not in (run / "report.md").read_text(encoding="utf-8")

    calls.clear()
    pipeline.run_pipeline(config, run, only=["evaluate"])
    assert calls == []  # complete: nothing runs
    pipeline.run_pipeline(config, run, only=["evaluate"], force=True)
    assert calls == ["captioning", "retrieval", "zero-shot"]  # forced: every task again

    # A pretraining setting that changes no table (how many checkpoints it keeps) reruns nothing.
    calls.clear()
    pipeline.run_pipeline(load_config("tiny", ["pretrain.keep_checkpoints=7"]), run, only=["evaluate"])
    assert calls == []
    # A task that fails leaves no table of an earlier run behind for the report to show.
    monkeypatch.setitem(tasks_cli.RUNNERS, "captioning", broken)
    with pytest.raises(StageError):
        pipeline.run_pipeline(config, run, only=["evaluate"], force=True)
    assert not (run / "eval" / "captioning.json").exists() and not (run / "eval" / "captioning.md").exists()
    assert "the task failed" in (run / "report.md").read_text(encoding="utf-8")
    monkeypatch.setitem(tasks_cli.RUNNERS, "captioning", runner("captioning", captions))
    pipeline.run_pipeline(config, run, only=["evaluate"])

    # A new model (its manifest changed) makes every task run again; interrupted part-way, the
    # next run keeps what was finished on the new model.
    write_manifest(run / "pretrain", "pretrain", {"steps": 2})

    def interrupted(config, device, artifacts=None):
        calls.append("retrieval")
        raise KeyboardInterrupt

    calls.clear()
    monkeypatch.setitem(tasks_cli.RUNNERS, "retrieval", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(config, run, only=["evaluate"])
    monkeypatch.setitem(tasks_cli.RUNNERS, "retrieval", runner("retrieval", retrieval))
    pipeline.run_pipeline(config, run, only=["evaluate"])
    assert calls == ["captioning", "retrieval", "retrieval", "zero-shot"]


def test_the_text_only_bert_trained_beside_the_other_tasks_fails_zero_shot_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vbert.config import load_config
    from vbert.core.manifest import read_manifest
    from vbert.errors import StageError
    from vbert.tasks import cli as tasks_cli

    calls: list[str] = []

    def runner(task: str, result: dict) -> object:
        def run(config, device, artifacts=None):
            calls.append(task)
            return result, ""

        return run

    monkeypatch.setitem(tasks_cli.RUNNERS, "captioning", runner("captioning", {"rows": [{"scores": {}}]}))
    monkeypatch.setitem(tasks_cli.RUNNERS, "retrieval", runner("retrieval", {"rows": {}}))
    monkeypatch.setitem(tasks_cli.RUNNERS, "zero-shot", runner("zero-shot", {}))
    monkeypatch.setitem(evaluate_stage.STAGE_TASKS, "captioning", lambda result: {})
    monkeypatch.setitem(evaluate_stage.STAGE_TASKS, "retrieval", lambda result: {})
    run = tmp_path / "run"
    for folder in ("synthcook", "features", "vocab", "tokenize", "pretrain"):
        (run / folder).mkdir(parents=True)
    # the child process finds no token file in tokenize/: its error is zero-shot's, the others finish
    with pytest.raises(StageError, match="1 of 3 tasks failed") as failed:
        pipeline.run_pipeline(load_config("tiny"), run, only=["evaluate"])
    assert calls == ["captioning", "retrieval"]  # zero-shot never ran without its text-only BERT
    reason = read_manifest(run / "eval")["failures"][0]
    assert reason["item"] == "zero-shot"
    assert "text-only BERT (trained beside the other tasks): DataError" in reason["reason"]
    assert str(run / "tokenize") in reason["reason"] and reason["reason"] in str(failed.value)


def test_a_stop_signal_during_an_evaluation_task_stops_the_whole_stage(
    tmp_path, monkeypatch, scripted_zero_shot
) -> None:
    from vbert.config import load_config
    from vbert.pretraining.trainer import TrainingStopped
    from vbert.tasks import cli as tasks_cli

    def stopped(config, device, artifacts=None):
        raise TrainingStopped("stopped by SIGTERM after step 3 of 8", exit_code=143)

    def never(config, device, artifacts=None):
        raise AssertionError("a task ran after the stop")

    monkeypatch.setitem(tasks_cli.RUNNERS, "captioning", stopped)
    monkeypatch.setitem(tasks_cli.RUNNERS, "retrieval", never)
    monkeypatch.setitem(tasks_cli.RUNNERS, "zero-shot", never)
    for folder in ("synthcook", "features", "vocab", "tokenize", "pretrain"):
        (tmp_path / "run" / folder).mkdir(parents=True)
    with pytest.raises(TrainingStopped):
        pipeline.run_pipeline(load_config("tiny"), tmp_path / "run", only=["evaluate"])


def test_the_evaluate_stage_keeps_the_captioner_and_redoes_captioning_for_a_stage_that_kept_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripted_zero_shot: None
) -> None:
    from vbert.config import load_config
    from vbert.core.manifest import file_sha256, read_manifest
    from vbert.tasks import cli as tasks_cli
    from vbert.tasks.captioner_file import FILES

    calls: list[str] = []

    def runner(task: str) -> object:
        def run(config, device, artifacts=None):
            calls.append(task)
            if task != "captioning":
                return {
                    "rows": {
                        "VideoBERT, cross-modal": {"verb top-1": 1, "noun top-1": 2},
                        "VideoBERT alignment": {"R@5": 3},
                    }
                }, ""
            artifacts.captioner_dir.mkdir(parents=True, exist_ok=True)
            for name in FILES:
                (artifacts.captioner_dir / name).write_text(name, encoding="utf-8")
            kept = {f"captioner/{name}": file_sha256(artifacts.captioner_dir / name) for name in FILES}
            return {"rows": [{"scores": {"BLEU-4": 0.1, "CIDEr": 0.2}}], "captioner": kept}, ""

        return run

    for task in ("zero-shot", "captioning", "retrieval"):
        monkeypatch.setitem(tasks_cli.RUNNERS, task, runner(task))
    config, run = load_config("tiny"), tmp_path / "run"
    for folder in ("synthcook", "features", "vocab", "tokenize", "pretrain"):
        (run / folder).mkdir(parents=True)
    pipeline.run_pipeline(config, run, only=["evaluate"])
    manifest = read_manifest(run / "eval")
    assert manifest["captioner"] == "captioner" and {f"captioner/{n}" for n in FILES} <= set(
        manifest["outputs"]
    )
    calls.clear()
    pipeline.run_pipeline(config, run, only=["evaluate"])
    assert calls == []  # complete, captioner kept: nothing runs
    # a stage finished by a vbert that kept no captioner: only captioning runs again
    manifest.pop("captioner")
    (run / "eval" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    pipeline.run_pipeline(config, run, only=["evaluate"])
    assert calls == ["captioning"] and read_manifest(run / "eval")["captioner"] == "captioner"
    # a kept captioner changed since: captioning runs again
    (run / "eval" / "captioner" / FILES[0]).write_text("edited", encoding="utf-8")
    manifest = read_manifest(run / "eval")
    manifest["complete"] = False  # as an interrupted run leaves it
    (run / "eval" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    calls.clear()
    pipeline.run_pipeline(config, run, only=["evaluate"])
    assert calls == ["captioning"]


PARENT_SCRIPT = """\
import multiprocessing, signal, sys, time
from pathlib import Path

from vbert.core.graceful_stop import stop_when_parent_ends


def child(flag: str) -> None:
    stop_when_parent_ends()
    signal.signal(signal.SIGTERM, lambda *_: (Path(flag).write_text("SIGTERM"), sys.exit(0)))
    Path(flag + ".started").write_text("")
    time.sleep(120)


if __name__ == "__main__":
    process = multiprocessing.get_context("forkserver").Process(target=child, args=(sys.argv[1],))
    process.start()
    time.sleep(120)
"""


def test_a_child_of_the_evaluate_stage_is_stopped_when_its_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL of `vbert run` cannot stop the text-only BERT's process: it stops itself (SIGTERM)."""
    script, flag = tmp_path / "parent.py", tmp_path / "child-stopped"
    script.write_text(PARENT_SCRIPT, encoding="utf-8")
    parent = subprocess.Popen([sys.executable, str(script), str(flag)])
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{flag}.started").exists():
            assert time.monotonic() < deadline and parent.poll() is None, "the child never started"
            time.sleep(0.1)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert flag.exists() and flag.read_text() == "SIGTERM"  # without the watcher it sleeps on
    finally:
        parent.kill()
