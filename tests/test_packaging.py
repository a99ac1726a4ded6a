"""pyproject.toml and environment.yml name the same dependencies; the layout is the course's."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _normalise(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, requirement
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def test_environment_yml_and_pyproject_name_the_same_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {_normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert env["name"] == "vbert"
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_normalise(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, (
        f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    )
    assert "-e .[dev]" in pip_section  # the package itself, installed the same way


def test_dependencies_use_lower_bounds_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        _, spec = _normalise(requirement)
        assert spec.startswith(">=") and "," not in spec and "==" not in spec, requirement


def test_top_level_layout() -> None:
    for name in (
        "notebooks",
        "vbert",
        "data_scripts",
        "tests",
        "docs",
        "environment.yml",
        "README.md",
        "pyproject.toml",
        "Makefile",
        ".ci/run",
    ):
        assert (ROOT / name).exists(), name
    assert not (ROOT / "src").exists()


def test_ci_runs_what_the_readme_tells() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in ci.splitlines()
        if line.strip() and not line.strip().startswith(("#", "set ", "cd "))
    ]
    assert commands[-1] == "make test" and commands.count("make test") == 1
    # before it, only the install of the browser that tests/test_book.py drives, when it is missing
    browser_install = [c for c in commands[:-1] if not c.startswith(("if ", "as_root=", "fi"))]
    assert all(c.startswith("$as_root ") and "apt-get" in c for c in browser_install), browser_install
    assert "chromium chromium-driver" in ci
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme and "make demo" in readme
