"""Classroom assignments: every lesson 01-08 (03a and 03b for lesson 03) has an exercise notebook in
notebooks/exercises/ and ends with a short section that links it; no lesson holds graded work or a
solution; student versions carry no solution; nbgrader's autograder gives full marks to the
committed (solution) exercise notebooks and none to untouched student versions.

The release is generated once per test process; each exercise notebook runs in seconds, and the two
test classes go to different xdist workers (docs/benchmarks.md).
"""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip(
    "nbgrader",
    reason="nbgrader, a dev extra, is not installed (pip install -e '.[dev]'): "
    "the classroom assignments were not checked",
)
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's gradebook sessions

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("assignments", ROOT / "tools" / "assignments.py")
assignments = importlib.util.module_from_spec(_spec)
sys.modules["assignments"] = assignments
_spec.loader.exec_module(assignments)

NOTEBOOKS = assignments.graded_notebooks()
LESSONS = [assignments.lesson_of(p) for p in NOTEBOOKS]
EXERCISE = re.compile(r"^## Graded exercise \d+ \((implement|predict, then check|ablation)", re.MULTILINE)
HEADING = re.compile(r"^## Graded exercise (\d+) \(([^)]*), (\d+) points?\): (.+)$")


def _graded(path: Path) -> list[nbformat.NotebookNode]:
    return [c for c in nbformat.read(path, as_version=4).cells if assignments.is_graded(c)]


@pytest.fixture(scope="session")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Student versions and the nbgrader course, generated once per test process."""
    return assignments.release(tmp_path_factory.mktemp("assignments") / "release")


def _number(path: Path) -> str:
    return path.name.split("_")[0]


def test_lessons_01_to_08_have_an_exercise_notebook() -> None:
    assert [_number(p) for p in NOTEBOOKS] == ["01", "02", "03a", "03b", "04", "05", "06", "07", "08"]
    assert all(lesson.is_file() for lesson in LESSONS)
    assert all(p.name.endswith("_exercises.ipynb") for p in NOTEBOOKS)


def _exercises(path: Path) -> list[tuple[re.Match, int]]:
    """(heading match, points of its graded cells) of each graded exercise of a notebook, in order."""
    found = []
    for cell in _graded(path):
        heading = HEADING.match(cell.source.split("\n", 1)[0]) if cell.cell_type == "markdown" else None
        if heading:
            found.append([heading, 0])
        elif found and assignments.nbgrader_meta(cell).get("grade"):
            found[-1][1] += assignments.nbgrader_meta(cell)["points"]
    return [tuple(f) for f in found]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_number)
def test_exercise_headings_state_their_points(path: Path) -> None:
    exercises = _exercises(path)
    assert [int(h.group(1)) for h, _ in exercises] == list(range(1, len(exercises) + 1))
    for heading, points in exercises:
        assert int(heading.group(3)) == points, heading.group(0)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_number)
def test_lesson_ends_with_a_short_exercises_section_and_holds_no_solution(path: Path) -> None:
    lesson = nbformat.read(assignments.lesson_of(path), as_version=4)
    last = lesson.cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Exercises\n"), last.source[:80]
    assert f"](exercises/{path.name})" in last.source
    for heading, points in _exercises(path):  # each exercise: its kind, its points and its title
        kind, title = heading.group(2), heading.group(4)
        plural = "point" if points == 1 else "points"
        assert f"**{kind[0].upper() + kind[1:]}** ({points} {plural}): {title}" in last.source
    for cell in lesson.cells:
        assert not assignments.is_graded(cell) and not assignments.nbgrader_meta(cell)
        assert not any(marker in cell.source for marker in assignments.MARKERS)
        assert not re.search(r"^\s*#+ ?Solution|\*Answer:\*|YOUR CODE HERE", cell.source, re.MULTILINE)
    headings = [line for c in lesson.cells if c.cell_type == "markdown" for line in c.source.splitlines()]
    assert sum("exercise" in line.lower() for line in headings if line.startswith("#")) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_number)
def test_exercise_notebook_has_two_to_four_exercises_of_different_kinds(path: Path) -> None:
    assert assignments.section_problems(path) == []
    cells = _graded(path)
    kinds = [m.group(1) for c in cells if c.cell_type == "markdown" for m in EXERCISE.finditer(c.source)]
    assert 2 <= len(kinds) <= 4 and len(set(kinds)) >= 2, kinds
    setup = next(c for c in cells if c.cell_type == "code")
    assert "import" in setup.source and not assignments.nbgrader_meta(setup).get("solution")
    tests = [c for c in cells if assignments.nbgrader_meta(c).get("grade") and c.cell_type == "code"]
    if "implement" in kinds:  # an implement exercise is graded by hidden tests with real asserts
        hidden = [assignments.HIDDEN_RE.search(c.source) for c in tests]
        assert any(h and "assert" in h.group(1) for h in hidden)
    written = [c for c in cells if c.cell_type == "markdown" and assignments.nbgrader_meta(c).get("grade")]
    assert all(assignments.nbgrader_meta(c)["points"] > 0 for c in tests + written)


def test_leak_check_finds_a_solution_line_left_in_a_student_version(tmp_path: Path) -> None:
    meta = {
        "nbgrader": {
            "grade": False,
            "grade_id": "s",
            "locked": False,
            "schema_version": 3,
            "solution": True,
            "task": False,
        },
        "tags": ["graded"],
    }
    source = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import math"),
            nbformat.v4.new_code_cell(
                "def f(x):\n    ### BEGIN SOLUTION\n    import math\n    return x * 42\n    ### END SOLUTION",
                metadata=meta,
            ),
        ]
    )
    leaky = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import math\ndef f(x):\n    return x * 42")]
    )
    clean = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import math\ndef f(x):\n    raise NotImplementedError()")]
    )
    marked = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nassert True")]
    )
    for name, nb in (("source", source), ("leaky", leaky), ("clean", clean), ("marked", marked)):
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    assert assignments.solution_lines(source) == {"return x * 42"}  # "import math" is public, not secret
    assert assignments.leaked_lines(tmp_path / "source.ipynb", tmp_path / "leaky.ipynb") == ["return x * 42"]
    assert assignments.leaked_lines(tmp_path / "source.ipynb", tmp_path / "clean.ipynb") == []
    assert assignments.leaked_lines(tmp_path / "source.ipynb", tmp_path / "marked.ipynb") == [
        "### BEGIN HIDDEN TESTS"
    ]


def test_release_refuses_a_lesson_notebook(tmp_path: Path) -> None:
    with pytest.raises(assignments.AssignmentError, match="no cell is tagged 'graded'"):
        assignments.release(tmp_path / "out", [ROOT / "notebooks" / "01_attention.ipynb"])


def test_release_keeps_a_course_that_holds_grades(tmp_path: Path) -> None:
    (tmp_path / "course" / "autograded" / "alice").mkdir(parents=True)
    with pytest.raises(assignments.AssignmentError, match="already holds graded work .autograded."):
        assignments.release(tmp_path, NOTEBOOKS[:1])
    assert (tmp_path / "course" / "autograded" / "alice").is_dir()


class TestStudentVersions:
    """What students receive, and what the autograder makes of it untouched."""

    def test_student_versions_carry_no_solution_and_no_hidden_test(self, released: Path) -> None:
        for path in NOTEBOOKS:
            student = released / "student" / path.name
            text = "\n".join(c.source for c in nbformat.read(student, as_version=4).cells)
            secret = assignments.solution_lines(nbformat.read(path, as_version=4))
            assert len(secret) >= 10, path.name  # the search below has something to find
            assert secret.isdisjoint(line.strip() for line in text.splitlines()), path.name
            assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
            assert text.count("YOUR CODE HERE") >= 2 and "YOUR ANSWER HERE" in text
            cells = nbformat.read(student, as_version=4).cells
            assert all(
                not c.get("outputs") for c in cells if c.cell_type == "code"
            )  # outputs gave answers away
            assert (released / "course" / "source" / path.stem / path.name).is_file()
        assert (released / "course" / "gradebook.db").is_file()

    def test_untouched_student_notebooks_get_no_marks(self, released: Path, tmp_path: Path) -> None:
        for path in NOTEBOOKS:
            target = tmp_path / "untouched" / path.name
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(released / "student" / path.name, target)
        scores = assignments.grade_folder(released / "course", tmp_path)
        assert sorted(s.assignment for s in scores) == [p.stem for p in NOTEBOOKS]
        for s in scores:
            assert s.auto_max > 0 and s.manual_max > 0, s
            assert s.auto == 0 and s.manual == 0 and s.manual_pending == 0, s
        for path in NOTEBOOKS:  # an untouched notebook runs until it needs a missing solution
            graded = released / "course" / "autograded" / "untouched" / path.stem / path.name
            cells = [c for c in nbformat.read(graded, as_version=4).cells if c.cell_type == "code"]
            failed = [i for i, c in enumerate(cells) if any(o.output_type == "error" for o in c.outputs)]
            unsolved = next(i for i, c in enumerate(cells) if assignments.nbgrader_meta(c).get("solution"))
            assert failed and failed[0] >= unsolved, (path.name, failed, unsolved)  # setup cells run
            error = next(o for o in cells[failed[0]].outputs if o.output_type == "error")
            assert error.ename == "NotImplementedError", (path.name, error.ename)  # a stub, not a bug
        with open(released / "course" / "grades.csv", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == len(NOTEBOOKS) and {float(r["auto"]) for r in rows} == {0.0}

    def test_one_solved_exercise_scores_and_edited_tests_are_restored(
        self, released: Path, tmp_path: Path
    ) -> None:
        path = NOTEBOOKS[0]
        source = nbformat.read(path, as_version=4)
        student = nbformat.read(released / "student" / path.name, as_version=4)
        solutions = {assignments.nbgrader_meta(c).get("grade_id"): c.source for c in source.cells}
        first_solution = next(
            c for c in student.cells if assignments.nbgrader_meta(c).get("solution") and c.cell_type == "code"
        )
        first_solution.source = solutions[assignments.nbgrader_meta(first_solution)["grade_id"]]
        for cell in student.cells:  # a student "fixes" every test cell; the grader puts the real ones back
            if assignments.nbgrader_meta(cell).get("grade") and cell.cell_type == "code":
                cell.source = "pass"
        nbformat.write(student, tmp_path / path.name)
        score = assignments.grade_submission(released / "course", "partial", tmp_path / path.name)
        first_points = next(
            assignments.nbgrader_meta(c)["points"]
            for c in source.cells
            if assignments.nbgrader_meta(c).get("grade") and c.cell_type == "code"
        )
        assert score.auto == first_points < score.auto_max

    def test_grading_an_unknown_notebook_is_a_clear_error(self, released: Path, tmp_path: Path) -> None:
        stray = tmp_path / "99_unknown.ipynb"
        nbformat.write(nbformat.v4.new_notebook(), stray)
        with pytest.raises(assignments.AssignmentError, match="no released assignment named 99_unknown"):
            assignments.grade_submission(released / "course", "someone", stray)


class TestSolutionNotebooks:
    """The committed notebooks are the instructor's solutions: the autograder must give them every point."""

    def test_solution_notebooks_get_full_marks(self, released: Path) -> None:
        for path in NOTEBOOKS:
            score = assignments.grade_submission(released / "course", "instructor", path)
            written = [
                c
                for c in _graded(path)
                if c.cell_type == "markdown" and assignments.nbgrader_meta(c).get("grade")
            ]
            assert score.auto == score.auto_max > 0, score
            assert score.manual_pending == len(written) > 0, score  # model answers wait for a reader
