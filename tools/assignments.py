"""Classroom assignments from the course's exercise notebooks, with nbgrader.

Each lesson 01-08 (lesson 03 in two notebooks, 03a and 03b) has its graded exercises in a notebook of
their own, `notebooks/exercises/<lesson>_exercises.ipynb`, and ends with a short "Exercises" section
that links it. The committed exercise notebooks are the instructor's (solution) versions: every cell
is tagged `graded` and carries nbgrader metadata (a grade id, points for graded cells), solutions are
marked `### BEGIN SOLUTION` / `### END SOLUTION` and hidden tests `### BEGIN HIDDEN TESTS` /
`### END HIDDEN TESTS`. This script turns them into what a course needs:

    python tools/assignments.py release [--out release]
        student versions (solutions, hidden tests and outputs removed) in OUT/student/, and the
        autograder material (an nbgrader course: source/, release/, gradebook.db) in OUT/course/.
    python tools/assignments.py grade SUBMISSIONS [--course release/course]
        autograde SUBMISSIONS/<student>/<notebook>.ipynb; prints and writes COURSE/grades.csv.

An exercise notebook runs on its own (its setup cell imports what the exercises use and makes their
small data; no lesson kernel, no trained model), so the autograder executes the whole of it, in
seconds.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "notebooks" / "exercises"
SUFFIX = "_exercises"  # notebooks/exercises/<lesson>_exercises.ipynb goes with notebooks/<lesson>.ipynb
GRADED_TAG = "graded"  # cell tag of every cell of an exercise notebook (and of no lesson cell)
SOLUTION_RE = re.compile(
    r"^\s*#+\s*BEGIN SOLUTION\s*$(.*?)^\s*#+\s*END SOLUTION\s*$", re.MULTILINE | re.DOTALL
)
HIDDEN_RE = re.compile(
    r"^\s*#+\s*BEGIN HIDDEN TESTS\s*$(.*?)^\s*#+\s*END HIDDEN TESTS\s*$", re.MULTILINE | re.DOTALL
)
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


class AssignmentError(Exception):
    """A notebook, submission or course folder that cannot be released or graded as asked."""


@dataclass(frozen=True)
class Score:
    """A submission's points: autograded (earned, possible), written answers (given, possible, to read)."""

    student: str
    assignment: str
    auto: float
    auto_max: float
    manual: float  # written answers: points given so far (0 for an answer left blank)
    manual_max: float
    manual_pending: int  # written answers still to read and grade by hand


# ------------------------------------------------------------------ notebooks and their graded sections


def is_graded(cell: nbformat.NotebookNode) -> bool:
    """True for a cell of a graded assignment (every cell of an exercise notebook)."""
    return GRADED_TAG in cell.get("metadata", {}).get("tags", [])


def graded_notebooks(folder: Path = EXERCISES) -> list[Path]:
    """The exercise notebooks, in course order (their names start with their lesson's number)."""
    return [
        p
        for p in sorted(folder.glob(f"[0-9][0-9]*_*{SUFFIX}.ipynb"))  # 03a_..., 03b_... too
        if any(is_graded(c) for c in nbformat.read(p, as_version=4).cells)
    ]


def lesson_of(notebook: Path) -> Path:
    """The lesson notebook an exercise notebook belongs to (notebooks/<lesson>.ipynb)."""
    return notebook.parent.parent / f"{notebook.stem.removesuffix(SUFFIX)}.ipynb"


def assignment_id(notebook: Path) -> str:
    """nbgrader assignment name of a notebook: its file name without .ipynb (one assignment per notebook)."""
    return notebook.stem


def nbgrader_meta(cell: nbformat.NotebookNode) -> dict:
    """The cell's nbgrader metadata ({} for an ordinary cell)."""
    return dict(cell.get("metadata", {}).get("nbgrader", {}))


def section_problems(notebook: Path) -> list[str]:
    """What is wrong with an exercise notebook as an assignment (empty when fine)."""
    cells = nbformat.read(notebook, as_version=4).cells
    name, problems = notebook.name, []
    if not any(is_graded(c) for c in cells):
        return [f"{name}: no cell is tagged {GRADED_TAG!r}"]
    loose = [i for i, c in enumerate(cells) if not (is_graded(c) and nbgrader_meta(c))]
    if loose:
        problems.append(f"{name}: cells {loose} lack the {GRADED_TAG!r} tag or nbgrader metadata")
    ids = [nbgrader_meta(c).get("grade_id") for c in cells if nbgrader_meta(c)]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"{name}: nbgrader grade ids are missing or repeated: {ids}")
    for cell in cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution") and cell.cell_type == "code" and not SOLUTION_RE.search(cell.source):
            problems.append(f"{name}: solution cell {meta['grade_id']} has no BEGIN/END SOLUTION markers")
        if meta.get("grade") and meta.get("points", 0) <= 0:
            problems.append(f"{name}: graded cell {meta['grade_id']} has no points")
    lesson = lesson_of(notebook)
    if not lesson.is_file():
        problems.append(f"{name}: its lesson {lesson.name} does not exist")
    elif f"](../{lesson.name})" not in cells[0].source:
        problems.append(f"{name}: the first cell does not link back to its lesson ../{lesson.name}")
    return problems


def solution_lines(notebook: nbformat.NotebookNode) -> set[str]:
    """Lines only the instructor may see: inside solution or hidden-test markers, or a model written answer.

    A line that also occurs in the public part of the notebook (e.g. a common import) is not secret.
    """
    secret, public = [], []
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and nbgrader_meta(cell).get("solution"):
            secret += cell.source.splitlines()
            continue
        rest = cell.source
        for pattern in (SOLUTION_RE, HIDDEN_RE):
            secret += [line for block in pattern.findall(rest) for line in block.splitlines()]
            rest = pattern.sub("", rest)
        public += rest.splitlines()
    return {line.strip() for line in secret if line.strip()} - {line.strip() for line in public}


def leaked_lines(source: Path, student: Path) -> list[str]:
    """Solution, hidden-test or model-answer lines (or grading markers) left in a student version."""
    secret = solution_lines(nbformat.read(source, as_version=4))
    leaks = []
    for cell in nbformat.read(student, as_version=4).cells:
        for line in cell.source.splitlines():
            if line.strip() in secret or any(marker in line for marker in MARKERS):
                leaks.append(line.strip())
    return leaks


# ------------------------------------------------------------------ nbgrader configuration


def course_config(course: Path, timeout: int = 600) -> Config:
    """nbgrader settings for the course folder."""
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.course_id = "vbert"
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Execute.timeout = timeout
    config.Execute.kernel_name = "python3"
    return config


def _with_interpreter_scripts_on_path() -> None:
    """Put this interpreter's scripts folder first on PATH: nbgrader runs `alembic` by name.

    Without it, `.venv/bin/python tools/assignments.py ...` (what `make` runs, with no activated
    environment) fails with "No such file or directory: 'alembic'".
    """
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != scripts:
        os.environ["PATH"] = scripts + (os.pathsep + path if path else "")


def _run(app_class, config: Config, **attributes) -> None:
    """Run one nbgrader converter; raise AssignmentError with its log when it fails."""
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    _with_interpreter_scripts_on_path()

    coursedir = CourseDirectory(config=config)
    for key, value in attributes.items():
        setattr(coursedir, key, value)
    app = app_class(coursedir=coursedir, config=config)
    app.force = True
    result = capture_log(app)
    if not result["success"]:
        raise AssignmentError(
            f"nbgrader {app_class.__name__} failed for {attributes}:\n"
            f"{result.get('log', '')}\n{result.get('error', '')}"
        )


# ------------------------------------------------------------------ release and grade


def release(out: Path, notebooks: list[Path] | None = None, force: bool = False) -> Path:
    """Write student versions to out/student and the nbgrader course to out/course; return out.

    A course folder that already holds submissions (and so grades) is refused unless `force`.
    """
    from nbgrader.converters import GenerateAssignment

    notebooks = graded_notebooks() if notebooks is None else notebooks
    if not notebooks:
        raise AssignmentError(f"{EXERCISES}: no exercise notebook to release")
    problems = [p for nb in notebooks for p in section_problems(nb)]
    if problems:
        raise AssignmentError("cannot release:\n  " + "\n  ".join(problems))
    course = out / "course"
    graded = [course / d for d in ("submitted", "autograded", "feedback") if (course / d).exists()]
    if graded and not force:
        raise AssignmentError(
            f"{course} already holds graded work ({', '.join(d.name for d in graded)}); "
            "releasing again would replace its gradebook: move it away or use --force"
        )
    for stale in [
        out / "student",
        *(course / d for d in ("source", "release", "submitted", "autograded", "feedback")),
    ]:
        shutil.rmtree(stale, ignore_errors=True)
    (course / "gradebook.db").unlink(missing_ok=True)
    config = course_config(course)
    for notebook in notebooks:
        source = course / "source" / assignment_id(notebook) / notebook.name
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebook, source)
        _run(GenerateAssignment, config, assignment_id=assignment_id(notebook))
        student = course / "release" / assignment_id(notebook) / notebook.name
        leaks = leaked_lines(source, student)
        if leaks:
            raise AssignmentError(f"{student}: the student version still shows {leaks[:3]}")
        (out / "student").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(student, out / "student" / notebook.name)
    (course / "nbgrader_config.py").write_text(
        'c = get_config()  # noqa: F821\nc.CourseDirectory.course_id = "vbert"\nc.Execute.timeout = 600\n',
        encoding="utf-8",
    )
    return out


def grade_submission(course: Path, student: str, notebook: Path) -> Score:
    """Autograde one student's copy of a released notebook; return its points from the gradebook."""
    from nbgrader.converters import Autograde

    assignment = assignment_id(notebook)
    if not (course / "source" / assignment).is_dir():
        raise AssignmentError(f"{notebook}: no released assignment named {assignment} in {course}")
    try:
        nbformat.read(notebook, as_version=4)
    except Exception as error:  # nbformat raises several types for a damaged file
        raise AssignmentError(f"{notebook}: not a readable notebook ({error})") from error
    target = course / "submitted" / student / assignment / notebook.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
    _run(Autograde, course_config(course), assignment_id=assignment, student_id=student)
    return score(course, assignment, student)


def score(course: Path, assignment: str, student: str) -> Score:
    """A graded submission's points, read from the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as book:
        submission = book.find_submission(assignment, student)
        auto = auto_max = manual = manual_max = 0.0
        pending = 0
        for nb in submission.notebooks:
            for grade in nb.grades:
                points = grade.score or 0.0  # a grader's manual score, else the autograder's
                if _is_written_answer(book, grade.name, nb.name, assignment):
                    manual, manual_max = manual + points, manual_max + grade.max_score
                    pending += int(grade.needs_manual_grade)
                else:
                    auto, auto_max = auto + points, auto_max + grade.max_score
        return Score(student, assignment, auto, auto_max, manual, manual_max, pending)


def _is_written_answer(book, cell: str, notebook: str, assignment: str) -> bool:
    """True for a grade cell that is also a solution cell (graded by hand, not by tests)."""
    from nbgrader.api import MissingEntry

    try:
        book.find_solution_cell(cell, notebook, assignment)
    except MissingEntry:
        return False
    return True


def grade_folder(course: Path, submissions: Path) -> list[Score]:
    """Autograde SUBMISSIONS/<student>/<notebook>.ipynb for every student; write course/grades.csv."""
    scores = []
    for notebook in sorted(submissions.glob("*/*.ipynb")):
        scores.append(grade_submission(course, notebook.parent.name, notebook))
    if not scores:
        raise AssignmentError(f"{submissions}: no <student>/<notebook>.ipynb submissions found")
    with open(course / "grades.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["student", "assignment", "auto", "auto_max", "manual", "manual_max", "manual_pending"]
        )
        for s in scores:
            writer.writerow(
                [s.student, s.assignment, s.auto, s.auto_max, s.manual, s.manual_max, s.manual_pending]
            )
    return scores


def main(argv: list[str] | None = None) -> int:
    """Command line: `release` or `grade` (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="student versions and autograder material")
    rel.add_argument("--out", type=Path, default=ROOT / "release")
    rel.add_argument("--force", action="store_true", help="replace a course folder that holds graded work")
    grd = sub.add_parser("grade", help="autograde SUBMISSIONS/<student>/<notebook>.ipynb")
    grd.add_argument("submissions", type=Path)
    grd.add_argument("--course", type=Path, default=ROOT / "release" / "course")
    args = parser.parse_args(argv)
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy session notices from its gradebook
    try:
        if args.command == "release":
            out = release(args.out.resolve(), force=args.force)
            print(f"student versions: {out / 'student'}\nautograder material: {out / 'course'}")
        else:
            for s in grade_folder(args.course.resolve(), args.submissions.resolve()):
                print(
                    f"{s.student:<16} {s.assignment:<46} autograded {s.auto:g}/{s.auto_max:g}, written "
                    f"{s.manual:g}/{s.manual_max:g} ({s.manual_pending} answer(s) to read)"
                )
    except AssignmentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
