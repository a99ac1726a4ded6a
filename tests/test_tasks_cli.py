"""`vbert eval`: its tasks are listed, bad input fails with one clear line, results are written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vbert import pipeline
from vbert.cli import main
from vbert.tasks.cli import TASKS, write_result


def test_eval_lists_its_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert all(task in out for task in TASKS)


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
