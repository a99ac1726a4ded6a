"""`vbert run` runs the registered stages in order and writes a report with config and versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from vbert.config import load_config
from vbert.pipeline import runner as pipeline


def test_run_calls_stages_in_order_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def make(name: str) -> pipeline.Stage:
        def run(config, inputs: dict, out: Path, force: bool) -> dict:
            calls.append(name)
            return {"items": len(calls), "force": force}

        return pipeline.Stage(name, f"the {name} stage", run)

    monkeypatch.setattr(pipeline, "STAGES", [make("first"), make("second"), make("third")])
    results = pipeline.run_pipeline(load_config("tiny"), tmp_path, only=["first", "third"])
    assert calls == ["first", "third"] and [r.name for r in results] == ["first", "third"]
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| first |" in report and "| third |" in report and "| second |" not in report
    assert "name: tiny" in report and "- torch:" in report
    assert load_config(tmp_path / "config.yaml") == load_config("tiny")


def test_registered_stage_names_are_unique() -> None:
    names = [s.name for s in pipeline.STAGES]
    assert len(names) == len(set(names))


def test_only_takes_stage_names_with_spaces_or_commas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vbert.cli import main

    calls: list[str] = []

    def make(name: str) -> pipeline.Stage:
        return pipeline.Stage(
            name, f"the {name} stage", lambda config, inputs, out, force: calls.append(name) or {}
        )

    monkeypatch.setattr(pipeline, "STAGES", [make("first"), make("second"), make("third")])
    assert main(["run", "--out", str(tmp_path / "a"), "--only", "first,third"]) == 0
    assert main(["run", "--out", str(tmp_path / "b"), "--only", "second", "third"]) == 0
    assert calls == ["first", "third", "second", "third"]
