"""The `vbert` command: help lists the stages; user mistakes print one line, exit 2."""

from __future__ import annotations

import platform
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


def test_info_reports_versions_the_device_and_the_presets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import vbert

    assert main(["info"]) == 0
    rows = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert rows["vbert"] == vbert.__version__ and rows["torch"] == torch.__version__
    assert rows["python"] == platform.python_version()
    assert rows["device"] == f"cpu ({torch.get_num_threads()} threads)"  # the tests pin the CPU
    assert rows["presets"] == "tiny, small, base, paper"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["info", "--device", "cuda"]) == 2  # asking for a missing GPU is a one-line error
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "Traceback" not in err


def test_bad_preset_is_one_line_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vbert.cli", "config", "--preset", "tinny"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "preset 'tinny' does not exist" in lines[0]


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "vbert"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("vbert ")


def _documented_commands() -> list[tuple[str, list[str]]]:
    """Every `vbert ...` command in the README's and docs' code blocks, as (file, argv after 'vbert')."""
    import re
    import shlex

    root = Path(__file__).resolve().parents[1]
    found = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        blocks, current, language = [], None, ""
        for line in doc.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                if current is None:
                    current, language = [], line[3:].strip()
                else:
                    if language in ("", "bash", "sh", "console"):
                        blocks.append("\n".join(current))
                    current = None
            elif current is not None:
                current.append(line)
        for block in blocks:
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(re.sub(r"<[^>]*>", "PLACEHOLDER", line.split(" #")[0]))
                for start, word in enumerate(words):  # `vbert X`, `python -m vbert X`, `-m vbert.cli X`
                    if word == "vbert" and (start == 0 or words[start - 1] == "-m") or word == "vbert.cli":
                        found.append((doc.name, words[start + 1 :]))
                        break
    return found


def test_every_documented_vbert_command_parses() -> None:
    """Commands in README.md and docs/ name real subcommands and options (docs drift from the CLI)."""
    from vbert.cli import build_parser

    commands = _documented_commands()
    assert len(commands) >= 10 and any(argv[:1] == ["bench"] for _, argv in commands)
    for doc, argv in commands:
        parser = build_parser(argv[0] if argv else None)
        try:
            parser.parse_args(argv)
        except SystemExit as exit_:
            pytest.fail(f"{doc}: `vbert {' '.join(argv)}` does not parse (exit {exit_.code})")
