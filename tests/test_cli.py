"""The `vbert` command: help lists the stages; user mistakes print one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vbert.cli import COMMANDS, main


def test_help_lists_every_registered_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name, _, _ in COMMANDS:
        assert name in out
    assert {"run", "config", "info"} <= {name for name, _, _ in COMMANDS}


def test_every_registered_stage_builds_its_own_help() -> None:
    for name, _, _ in COMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0, name


def test_config_prints_the_resolved_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--preset", "tiny", "--set", "model.num_layers=3"]) == 0
    out = capsys.readouterr().out
    assert "name: tiny" in out and "num_layers: 3" in out


def test_bad_preset_is_one_line_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vbert.cli", "config", "--preset", "tinny"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "preset 'tinny' does not exist" in lines[0]


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "vbert"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("vbert ")
