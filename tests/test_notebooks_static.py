"""Every notebook, lessons and exercise notebooks, declares the python3 kernel and imports only installed
packages (vbert, not siblings)."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXERCISE_NOTEBOOKS = sorted((ROOT / "notebooks" / "exercises").glob("*.ipynb"))
FIRST_CELL_NEEDS = ("seed", "select_device", "VBERT_PRESET", "__version__")
# An exercise notebook runs on the CPU with small data of its own: no device, no preset.
EXERCISE_FIRST_CELL_NEEDS = ("seed", "__version__")


def _imported_modules(source: str) -> set[str]:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    names = set()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("<relative import>" if node.level else (node.module or "").split(".")[0])
    return names


def notebook_problems(
    path: Path, repo: Path = ROOT, first_cell_needs: tuple[str, ...] = FIRST_CELL_NEEDS
) -> list[str]:
    """Everything wrong with one notebook's kernel, imports and first cell (empty when fine)."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append("kernelspec is not python3")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    source = "\n".join(code)
    if "sys.path" in source:
        problems.append("edits sys.path")
    siblings = {p.stem for p in path.parent.glob("*.py")}
    for module in sorted(_imported_modules(source)):
        if module == "<relative import>" or module in siblings:
            problems.append(f"imports {module} from beside the notebook")
            continue
        spec = importlib.util.find_spec(module)
        if spec is None:
            problems.append(f"imports {module}, which is not installed")
            continue
        origin = Path(spec.origin or "")
        installed = "site-packages" in origin.parts or module in sys.stdlib_module_names
        if module != "vbert" and not installed and repo in origin.parents:
            problems.append(f"imports {module} from the repository, not an install")
    first = code[0] if code else ""
    problems += [f"first code cell lacks {n}" for n in first_cell_needs if n not in first]
    return problems


def test_notebooks_exist_and_are_numbered() -> None:
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("00_") and EXERCISE_NOTEBOOKS
    for path in NOTEBOOKS + EXERCISE_NOTEBOOKS:
        assert re.match(r"\d\d[a-z]?_", path.name), path.name  # 03a_..., 03b_...: one lesson in two parts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_kernel_imports_and_first_cell(path: Path) -> None:
    assert notebook_problems(path) == []


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=lambda p: p.name)
def test_exercise_notebook_kernel_imports_and_first_cell(path: Path) -> None:
    assert notebook_problems(path, first_cell_needs=EXERCISE_FIRST_CELL_NEEDS) == []


def test_the_check_catches_a_bad_notebook(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("X = 1\n", encoding="utf-8")
    (tmp_path / "mine.py").write_text("Y = 2\n", encoding="utf-8")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import sys\nsys.path.insert(0, '..')\nimport helpers"),
            nbformat.v4.new_code_cell("from mine import Y\nimport not_a_real_package_xyz"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "ir", "display_name": "R"}
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    problems = notebook_problems(path, repo=tmp_path)
    assert "kernelspec is not python3" in problems
    assert "edits sys.path" in problems
    assert "imports helpers from beside the notebook" in problems
    assert "imports mine from beside the notebook" in problems
    assert "imports not_a_real_package_xyz, which is not installed" in problems
    assert "first code cell lacks VBERT_PRESET" in problems


def test_nbval_ignores_stderr_streams() -> None:
    import nbformat.v4 as v4
    import nbval.plugin

    outputs = [
        v4.new_output("stream", name="stdout", text="42\n"),
        v4.new_output("stream", name="stderr", text="warn\n"),
    ]
    kept = nbval.plugin.transform_streams_for_comparison(outputs)
    assert kept == [{"output_type": "stream", "stdout": "42\n"}]
