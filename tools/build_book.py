"""Build the course website: the stored notebooks, the README, docs/ and the API reference.

    python tools/build_book.py [--out build/book]

The sources are gathered into OUT/src (the README becomes the landing page, notebooks and docs keep
their relative paths, so the links between them work as they do on GitHub), an API page is written
for every module found by walking the `vbert` package, and an exercises page is made from the
exercise notebooks (notebooks/exercises/), which the site shows as students receive them: no
solution, hidden test, model answer or output. Sphinx then builds OUT/html with the configuration in
book/conf.py. Lessons are never executed: their stored outputs are shown. Every warning is an error (a broken
internal link, a missing image, a cross-reference that does not resolve), and all of them are
reported before the build fails. Warnings name the repository's files, not the gathered copies.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vbert"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
# The site's navigation after the lessons, in course order; each entry is a path under OUT/src.
AFTER_LESSONS = {
    "For instructors": ["exercises", "docs/instructor_guide"],
    "Reference": ["docs/benchmarks", "docs/architecture", "docs/paper", "docs/book", "api/index"],
}


def markdown_text(markdown: str) -> str:
    """The text a reader sees of a one-line Markdown heading: no `#`s, backticks or emphasis marks."""
    text = re.sub(r"^#+\s*", "", markdown.strip())
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return re.sub(r"(\*\*|__|\*)(.+?)\1", r"\2", text).strip()


def notebook_headings(path: Path) -> list[tuple[int, str]]:
    """(level, Markdown source) of every heading in a notebook's Markdown cells, in order."""
    notebook = nbformat.read(path, as_version=4)
    headings = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        fenced = False
        for line in cell.source.splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            match = re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
            if match and not fenced:
                headings.append((len(match.group(1)), match.group(2)))
    return headings


def lesson_title(path: Path) -> str:
    """A lesson's title as its page shows it: the text of the notebook's first heading."""
    headings = notebook_headings(path)
    if not headings:
        raise ValueError(f"{path}: no Markdown heading, so the lesson has no title")
    return markdown_text(headings[0][1])


def heading_anchor(markdown: str) -> str:
    """The anchor MyST gives a heading (its default slug of the heading's text)."""
    text = markdown_text(markdown).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def lessons(root: Path = ROOT) -> list[Path]:
    """The lesson notebooks in course order (their names start with the lesson's number)."""
    return sorted((root / "notebooks").glob("[0-9]*.ipynb"))


def exercise_notebooks(root: Path = ROOT) -> list[Path]:
    """The lessons' exercise notebooks in course order (notebooks/exercises/<lesson>_exercises.ipynb)."""
    return sorted((root / "notebooks" / "exercises").glob("[0-9]*_exercises.ipynb"))


def exercises_page(root: Path = ROOT) -> str:
    """The exercises page: book/exercises.md, then each lesson's exercise notebook and its exercises."""
    parts = [(root / "book" / "exercises.md").read_text(encoding="utf-8").rstrip(), ""]
    notebooks = exercise_notebooks(root)
    for path in notebooks:
        lesson = root / "notebooks" / f"{path.stem.removesuffix('_exercises')}.ipynb"
        items = [
            markdown_text(text) for _, text in notebook_headings(path) if text.startswith("Graded exercise")
        ]
        parts += [
            f"## {lesson_title(lesson)}",
            "",
            f"[The exercise notebook](notebooks/exercises/{path.name}), from the end of "
            f"[the lesson](notebooks/{lesson.name}#exercises):",
            "",
            *(f"- {item}" for item in items),
            "",
        ]
    if notebooks:
        entries = [f"notebooks/exercises/{path.stem}" for path in notebooks]
        parts += ["```{toctree}", ":hidden:", ":titlesonly:", "", *entries, "```", ""]
    return "\n".join(parts) + "\n"


SOLUTION_BLOCK = re.compile(r"^([ \t]*)#+\s*BEGIN SOLUTION\s*$.*?^[ \t]*#+\s*END SOLUTION\s*$", re.M | re.S)
HIDDEN_BLOCK = re.compile(
    r"^[ \t]*#+\s*BEGIN HIDDEN TESTS\s*$.*?^[ \t]*#+\s*END HIDDEN TESTS\s*\n?", re.M | re.S
)


def student_version(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """An exercise notebook as students receive it: no solution, hidden test, model answer or output."""
    for cell in notebook.cells:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "markdown" and nbgrader.get("solution"):
            cell.source = "YOUR ANSWER HERE"
        elif cell.cell_type == "code":
            source = SOLUTION_BLOCK.sub(r"\1# YOUR CODE HERE\n\1raise NotImplementedError()", cell.source)
            cell.source = HIDDEN_BLOCK.sub("", source).rstrip()
            cell.outputs, cell.execution_count = [], None
    return notebook


def package_modules(package: str = PACKAGE) -> list[str]:
    """Every public module and subpackage of `package`, found by importing and walking it."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts[1:]):
            continue  # private modules and __main__ (which runs the CLI when imported)
        names.append(info.name)
    return sorted(names)


def module_summary(name: str) -> str:
    """The first paragraph of a module's docstring, on one line (empty when it has none)."""
    doc = (importlib.import_module(name).__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def _rst_title(text: str) -> str:
    return f"{text}\n{'=' * len(text)}\n"


def api_pages(modules: list[str]) -> dict[str, str]:
    """reStructuredText of the API reference: one page per module, packages list their children."""
    pages = {}
    for name in modules:
        children = [m for m in modules if m.rpartition(".")[0] == name]
        is_root = name == modules[0]
        title = "API reference" if is_root else f"``{name}``"
        lines = [_rst_title(title)]
        if is_root:
            lines += [f"Generated from the docstrings of the ``{name}`` package, one page per module.", ""]
        lines += [f".. automodule:: {name}", "   :members:", "   :show-inheritance:", ""]
        if children:
            lines += [
                f"- :doc:`{child}`{': ' if module_summary(child) else ''}{module_summary(child)}"
                for child in children
            ]
            lines += ["", ".. toctree::", "   :hidden:", "", *(f"   {child}" for child in children), ""]
        pages["index" if is_root else name] = "\n".join(lines)
    return pages


def landing_page(root: Path = ROOT) -> str:
    """The README with the site's navigation (a hidden table of contents) appended."""
    readme = (root / "README.md").read_text(encoding="utf-8").rstrip()
    lesson_docs = [f"notebooks/{p.stem}" for p in lessons(root)]
    trees = [("Lessons", lesson_docs), *AFTER_LESSONS.items()]
    blocks = []
    for caption, entries in trees:
        # titlesonly: a lesson with a second top-level heading (03's "Part 2") is still one entry
        blocks += ["```{toctree}", ":hidden:", ":titlesonly:", f":caption: {caption}", "", *entries, "```"]
        blocks.append("")
    return readme + "\n\n" + "\n".join(blocks)


def _copy_tree(source: Path, dest: Path, keep: set[str] | None) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts) or path.is_dir():
            continue
        if keep is not None and path.suffix.lower() not in keep:
            continue
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / relative)


def stage_notebook(path: Path, dest: Path) -> str | None:
    """Copy a lesson for the site; a problem that keeps it off the site, or None.

    Later top-level parts become sections (`demote_later_parts`). Widgets need scripts from a
    CDN, which this self-contained site does not load: an output showing one is a problem. Widget
    state that no output shows (left by a progress bar that a quiet run did not draw) is dropped,
    so no page asks for those scripts.
    """
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "application/vnd.jupyter.widget-view+json" in output.get("data", {}):
                return (
                    f"notebooks/{path.name}: a stored output is a Jupyter widget, which the site cannot "
                    "show; store the notebook without widgets (VBERT_QUIET=1 silences progress bars)"
                )
    demoted = demote_later_parts(notebook)
    if notebook.metadata.pop("widgets", None) is None and not demoted:
        shutil.copy2(path, dest)
    else:
        nbformat.write(notebook, dest)
    return None


def demote_later_parts(notebook: nbformat.NotebookNode) -> bool:
    """Make a second top-level heading ("# Part 2") and all after it one level lower; True if any.

    A page has one title: without this, the site's navigation would list each part as a lesson.
    """
    seen_title = demoting = False
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        lines, fenced = cell.source.split("\n"), False
        for index, line in enumerate(lines):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            match = re.match(r"^(#{1,5})\s", line)
            if fenced or not match:
                continue
            if len(match.group(1)) == 1:
                demoting, seen_title = seen_title, True
            if demoting:
                lines[index] = "#" + line
        cell.source = "\n".join(lines)
    return demoting


def gather_sources(src: Path, root: Path = ROOT, package: str = PACKAGE) -> list[str]:
    """Write the site's sources into `src` (emptied first); the problems that fail the build."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    (src / "index.md").write_text(landing_page(root), encoding="utf-8")
    _copy_tree(root / "docs", src / "docs", None)
    _copy_tree(root / "notebooks", src / "notebooks", IMAGE_SUFFIXES)
    (src / "notebooks").mkdir(exist_ok=True)
    staged = [stage_notebook(path, src / "notebooks" / path.name) for path in lessons(root)]
    problems = [problem for problem in staged if problem]
    (src / "notebooks" / "exercises").mkdir(exist_ok=True)
    for path in exercise_notebooks(root):
        exercise = student_version(nbformat.read(path, as_version=4))
        nbformat.write(exercise, src / "notebooks" / "exercises" / path.name)
    (src / "exercises.md").write_text(exercises_page(root), encoding="utf-8")
    (src / "api").mkdir()
    for name, text in api_pages(package_modules(package)).items():
        (src / "api" / f"{name}.rst").write_text(text, encoding="utf-8")
    return problems


def source_name(line: str, src: Path, readme_lines: int) -> str:
    """A Sphinx message with the gathered copies' paths replaced by the repository's files."""
    navigation = re.match(rf"{re.escape(str(src))}/index\.md:(\d+):", line)
    if navigation and int(navigation.group(1)) > readme_lines:
        where = "site navigation (lessons, then AFTER_LESSONS in tools/build_book.py):"
        line = where + line[navigation.end() :]
    line = line.replace(f"{src}/index.md", "README.md")
    line = line.replace(f"{src}/exercises.md", "exercises page (book/exercises.md and the notebooks)")
    line = line.replace(f"{src}/api/", "API page (made from the package) api/")
    return line.replace(f"{src}/", "")


def build(out: Path, root: Path = ROOT, package: str = PACKAGE, jobs: str = "auto") -> tuple[int, list[str]]:
    """Gather the sources into OUT/src and build OUT/html: (exit code, 0 only if nothing warned; messages)."""
    src, html, doctrees = out / "src", out / "html", out / "doctrees"
    problems = gather_sources(src, root, package)
    for stale in (html, doctrees):
        shutil.rmtree(stale, ignore_errors=True)  # a fresh build: every warning is seen every time
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-c",
        str(root / "book"),
        "-d",
        str(doctrees),
        "-W",
        "--keep-going",
        "-n",
        "-q",
        "-j",
        jobs,
        str(src),
        str(html),
    ]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    readme_lines = len((root / "README.md").read_text(encoding="utf-8").splitlines())
    output = (result.stdout + result.stderr).splitlines()
    messages = problems + [source_name(line, src, readme_lines) for line in output]
    return (result.returncode or int(bool(problems))), messages


def main(argv: list[str] | None = None) -> int:
    """Command line: build the site into OUT/html."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "build" / "book", help="build folder (the site goes to OUT/html)"
    )
    parser.add_argument("--jobs", default="auto", help="Sphinx's parallel jobs (default: one per core)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    code, messages = build(args.out.resolve(), jobs=args.jobs)
    for line in messages:
        print(line, file=sys.stderr)
    seconds = time.perf_counter() - start
    if code:
        print(f"book: failed after {seconds:.0f} s (every warning is an error; see above)", file=sys.stderr)
    else:
        print(f"book: {args.out / 'html' / 'index.html'} built in {seconds:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
