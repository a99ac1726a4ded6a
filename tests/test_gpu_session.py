"""benchmarks/gpu_session.py on the CPU: every part of a GPU session, on the micro preset, into one folder.

The script is run as a user runs it (a process of its own, `--plan cpu-check`), on the micro preset
of the end-to-end tests with checkpoints every 4 of 12 steps and the alignment phase from step 6.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from micro_run import micro_config

from vbert.config import load_config
from vbert.pretraining.bench import add_arguments as bench_arguments
from vbert.pretraining.bench_loops import check_variant

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_session.py"
MICRO_SETS = ["pretrain.steps=12", "pretrain.alignment_from_step=6", "pretrain.checkpoint_every=4"]


def session(folder: Path, out: str, *args: str) -> subprocess.CompletedProcess:
    """Run the script on the CPU plan with the micro preset; its work folder is `folder/work`."""
    micro_config(folder)  # writes folder/micro.yaml
    micro = folder / "micro.yaml"
    sets = [arg for s in MICRO_SETS for arg in ("--set", s)]
    command = [sys.executable, str(SCRIPT), "--plan", "cpu-check", "--preset", str(micro), *sets]
    command += ["--out", str(folder / out), "--work", str(folder / "work"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One whole session: (its folder, the finished process)."""
    folder = tmp_path_factory.mktemp("session")
    return folder, session(folder, "out")


def test_every_part_runs_and_the_summary_has_every_number(finished) -> None:
    folder, done = finished
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((folder / "out" / "summary.json").read_text(encoding="utf-8"))
    parts = ["environment", "bench-base", "bench-paper", "agreement", "pipeline", "zero-shot-steps"]
    assert all(summary["parts"][p]["status"] == "ok" for p in parts), summary["parts"]
    assert summary["parts"]["generate-beside"]["status"] == "ok"  # rendered beside the benchmarks
    assert summary["environment"]["missing_packages"] == [] and summary["environment"]["card"] == "CPU"

    base = {r["name"]: r for r in summary["bench"]["bench-base"]["rows"]}
    assert set(base) == {"plain-eager", "vbert-eager"} and base["plain-eager"]["ratio"] == 1.0
    assert all(math.isfinite(r["last_loss"]) and r["seq_per_s"] > 0 for r in base.values())
    assert base["vbert-eager"]["ratio"] == pytest.approx(
        base["vbert-eager"]["seq_per_s"] / base["plain-eager"]["seq_per_s"], abs=1e-3
    )
    assert [r["name"] for r in summary["bench"]["bench-paper"]["rows"]] == ["vbert-bf16res-eager"]
    # the targets are GPU figures: rows measured on the CPU neither meet nor miss them
    assert [t["met"] for t in summary["targets"]] == [None, None, None]
    assert summary["agreement"]["steps"] == 8 and summary["agreement"]["max_abs_diff"] < 1e-4

    pipeline = summary["pipeline"]
    assert list(pipeline["stages"]) == ["generate", "extract", "vocab", "tokenize", "pretrain", "evaluate"]
    assert pipeline["stages"]["pretrain"]["summary"]["steps"] == 12
    assert 0 <= pipeline["pretraining"]["median share of time waiting for data"] <= 1
    assert "| VideoBERT, cross-modal |" in pipeline["tables"]["zero-shot"]
    assert "| VideoBERT + clip features |" in pipeline["tables"]["captioning"]
    assert "| VideoBERT alignment |" in pipeline["tables"]["retrieval"]
    assert [r["step"] for r in summary["zero_shot_steps_rows"]["rows"]] == [4, 8, 12]

    markdown = (folder / "out" / "summary.md").read_text(encoding="utf-8")
    for heading in (
        "## Parts",
        "## Targets",
        "## Same mathematics",
        "## The pipeline",
        "over kept checkpoints",
    ):
        assert heading in markdown
    assert (folder / "out" / "report.md").read_text(encoding="utf-8").startswith("# vbert run")


def test_the_details_archive_holds_each_part_and_stays_inside_its_folder(finished) -> None:
    folder, _ = finished
    with tarfile.open(folder / "out" / "details.tar.gz") as archive:
        names = archive.getnames()
    assert all(not n.startswith("/") and ".." not in Path(n).parts for n in names)
    for name in ("session.json", "parts/pipeline.log", "parts/bench-base.json", "run/eval/captioning.json"):
        assert name in names
    assert not any(n.endswith((".mp4", ".safetensors")) for n in names)  # results, not artifacts


def test_running_again_keeps_what_finished(finished) -> None:
    folder, _ = finished
    metrics = folder / "work" / "run" / "pretrain" / "metrics.jsonl"
    before = metrics.stat().st_mtime_ns
    again = session(folder, "again")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("finished by an earlier call") == 5  # every part but the environment's
    assert metrics.stat().st_mtime_ns == before
    summary = json.loads((folder / "again" / "summary.json").read_text(encoding="utf-8"))
    assert summary["pipeline"]["tables"].keys() == {"zero-shot", "captioning", "retrieval"}


def test_parts_past_the_deadline_are_recorded_not_started(tmp_path: Path) -> None:
    done = session(tmp_path, "out", "--deadline-s", "0")
    assert done.returncode == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["parts"]["environment"]["status"] == "ok"
    for part in ("bench-base", "bench-paper", "agreement", "pipeline", "zero-shot-steps"):
        assert summary["parts"][part]["status"] == "not started"
    assert "generate-beside" not in summary["parts"] and not (tmp_path / "work" / "run").exists()


def test_a_failing_part_is_named_with_its_error_and_the_session_goes_on(tmp_path: Path) -> None:
    done = session(tmp_path, "out", "--parts", "pipeline,zero-shot-steps", "--set", "model.num_heads=3")
    assert done.returncode == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    for part in ("pipeline", "zero-shot-steps"):  # the second ran although the first failed
        assert summary["parts"][part]["status"] == "failed"
        assert "model.num_heads: 3 does not divide model.hidden_size 32" in summary["parts"][part]["note"]
        assert "Traceback" not in summary["parts"][part]["log_tail"]  # a clear error, not a crash
    markdown = (tmp_path / "out" / "summary.md").read_text(encoding="utf-8")
    assert "| pipeline | failed |" in markdown and "does not divide" in markdown


def test_a_part_stopped_at_its_cap_is_resumed_by_the_next_call(tmp_path: Path) -> None:
    stopped = session(tmp_path, "out", "--parts", "pipeline", "--cap", "pipeline=6", "--no-generate-beside")
    assert stopped.returncode == 1
    part = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))["parts"]["pipeline"]
    assert part["status"] == "out of time" and "resumes" in part["note"] and part["seconds"] < 6 + 25
    resumed = session(tmp_path, "again", "--parts", "pipeline", "--no-generate-beside")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    summary = json.loads((tmp_path / "again" / "summary.json").read_text(encoding="utf-8"))
    assert summary["parts"]["pipeline"]["status"] == "ok"
    assert summary["pipeline"]["tables"].keys() == {"zero-shot", "captioning", "retrieval"}


def test_a_benchmark_stopped_at_its_cap_keeps_the_rows_it_printed(tmp_path: Path) -> None:
    """`vbert bench` prints each row as it is measured; a part stopped before its JSON keeps those."""
    parts = tmp_path / "work" / "parts"
    parts.mkdir(parents=True)
    row = {"name": "plain-eager", "seq_per_s": 200.0, "tokens_per_s": 6400, "useful_tflops": 0.1}
    row |= {"mfu": None, "peak_mem_gib": None, "last_loss": 5.0}  # as `vbert bench` prints a row
    (parts / "bench-base.log").write_text(
        f"compiling\n{json.dumps(row)}\nmeasuring vbert-eager\n", encoding="utf-8"
    )
    state = {"bench-base": {"status": "out of time", "seconds": 120.0, "note": "", "log_tail": ""}}
    (tmp_path / "work" / "session.json").write_text(json.dumps(state), encoding="utf-8")
    done = session(tmp_path, "out", "--parts", "environment")
    assert done.returncode == 0, done.stdout[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["bench"]["bench-base"]["rows"] == [{**row, "ratio": 1.0}]
    assert summary["parts"]["bench-base"]["status"] == "out of time"


def _script_module():
    """benchmarks/gpu_session.py as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("gpu_session", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_gpu_plan_is_valid_before_any_gpu_time_is_spent() -> None:
    """Every setting and benchmark argument of the GPU plan is accepted, and the plan keeps its promises."""
    script = _script_module()
    plan = script.PLANS["gpu"]
    config = load_config(plan.preset, plan.pipeline)
    base = load_config("base")
    assert config.data.num_train_videos >= 5000  # the scale
    steps = config.pretrain.steps
    assert (
        config.pretrain.alignment_from_step / steps == base.pretrain.alignment_from_step / base.pretrain.steps
    )
    kept = [s for s in range(1, steps + 1) if s % config.pretrain.checkpoint_every == 0]
    assert len(kept) == config.pretrain.keep_checkpoints  # the zero-shot curve covers the whole run
    for each in script.PLANS.values():
        parsed = {}
        for part, arguments in each.bench.items():
            parser = argparse.ArgumentParser()
            bench_arguments(parser)
            parsed[part] = parser.parse_args(["pretrain", *arguments])
            for variant in [*parsed[part].variants.split(","), parsed[part].agreement_vbert]:
                check_variant(variant)
        assert parsed["agreement"].check_agreement > 0
        assert each.reference in parsed["bench-base"].variants.split(",")  # the ratios' denominator
    assert sum(plan.caps_s.values()) < plan.deadline_s


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_the_gpu_plan_refuses_a_machine_without_one(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "needs a CUDA GPU" in done.stdout
    assert not (tmp_path / "work" / "run").exists()
