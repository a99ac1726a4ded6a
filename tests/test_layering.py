"""The package's imports follow the pipeline: lower folders never import higher ones, no cycles.

Read from the source (nothing is imported): every `import vbert...` / `from vbert... import`,
at the top of a file or inside a function, except those under `if TYPE_CHECKING:`, which exist
only for type checkers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vbert"

# Lowest first. A module may import modules of its own layer or of a lower one.
LAYERS = [
    ("vbert.errors",),
    ("vbert.config_rules",),
    ("vbert.config", "vbert.configs"),  # configs: the presets (YAML files)
    ("vbert.core",),
    ("vbert.data",),
    ("vbert.features",),
    ("vbert.visual_words",),
    ("vbert.bert",),
    ("vbert.pretraining",),
    ("vbert.tasks",),
    ("vbert.describe",),  # a finished run used on new videos: above the tasks it calls
    ("vbert.pipeline",),
    ("vbert.cli", "vbert.__main__"),
]
FACE = "vbert"  # the package's __init__: re-exports config and device helpers, so it sits with vbert.core
LAZY_IMPORTS_ALLOWED = {
    "vbert.cli"
}  # `vbert --help` imports no stage; `vbert info` imports torch only when run


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                inside |= {id(n) for n in ast.walk(child)}
    return inside


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The most specific module named by `target` (a module, or a name inside one)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def package_imports(modules: dict[str, Path]) -> list[tuple[str, str, bool, int]]:
    """(importer, imported module, at top level?, line) for every vbert import outside TYPE_CHECKING."""
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] == "vbert":
                    targets = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name.split(".")[0] == "vbert"]
            for target in targets:
                imported = _resolve(target, modules)
                if imported and imported != name:
                    edges.append((name, imported, id(node) in top, node.lineno))
    return edges


def layer_of(module: str) -> int:
    """Index of the layer `module` belongs to."""
    if module == FACE:
        return layer_of("vbert.core")
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise KeyError(f"{module} is in no layer: add its folder to LAYERS")


def cycles(edges: list[tuple[str, str, bool, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def imports() -> list[tuple[str, str, bool, int]]:
    return package_imports(module_files())


def test_every_module_has_a_layer() -> None:
    for name in module_files():
        layer_of(name)


def test_no_module_imports_a_higher_layer(imports) -> None:
    upward = [f"{a} (line {line}) imports {b}" for a, b, _, line in imports if layer_of(b) > layer_of(a)]
    assert not upward, "imports against the flow of the pipeline:\n" + "\n".join(upward)


def test_no_import_cycles(imports) -> None:
    found = cycles(imports)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_package_imports_sit_at_the_top_of_the_file(imports) -> None:
    local = [
        f"{a} (line {line}) imports {b} inside a function"
        for a, b, top, line in imports
        if not top and a not in LAZY_IMPORTS_ALLOWED
    ]
    assert not local, "\n".join(local)


def test_the_checks_catch_what_they_guard(tmp_path: Path) -> None:
    """An upward import, a cycle and a function-local import in a small package are all found."""
    root = tmp_path / "vbert"
    for name, text in {
        "__init__.py": "",
        "errors.py": "",
        "core/__init__.py": "",
        "core/a.py": "from vbert.core.b import x\nfrom vbert.tasks.t import y\n",
        "core/b.py": "from vbert.core.a import z\n",
        "tasks/__init__.py": "",
        "tasks/t.py": "def f():\n    from vbert.errors import E\n",
        "tasks/u.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vbert.pipeline import p\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    edges = package_imports(module_files(root))
    assert ("vbert.core.a", "vbert.tasks.t", True, 2) in edges  # upward: core imports tasks
    assert layer_of("vbert.tasks.t") > layer_of("vbert.core.a")
    assert cycles(edges) == [["vbert.core.a", "vbert.core.b"]]
    assert ("vbert.tasks.t", "vbert.errors", False, 2) in edges  # inside a function
    assert not [e for e in edges if e[0] == "vbert.tasks.u"]  # TYPE_CHECKING only: not an import at run time


def test_no_test_module_imports_another() -> None:
    """Shared test helpers live in helper modules (toy_tokens, micro_run) or conftest, not in test files."""
    offenders = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [f"{path.name} imports {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert not offenders, offenders
