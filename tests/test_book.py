"""The course website: built as `make book` builds it, served on 127.0.0.1, read in headless Chromium.

Each lesson page must load without console errors, open with the lesson's title, and show every
figure and table its notebook stores (each image loaded, natural width above 0). A screenshot of
each page is saved in the test's temporary folder. Without Chromium and ChromeDriver the browser
tests are skipped with the command that installs them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

pytest.importorskip("myst_nb", reason="the book needs the dev extra: pip install -e '.[dev]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (dev extra)")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
build_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_book)

LESSONS = build_book.lessons(ROOT)
OTHER_PAGES = ["index", *(page for pages in build_book.AFTER_LESSONS.values() for page in pages)]
INSTALL = (
    "headless Chromium is needed: install Debian's packages with "
    "`sudo apt-get install chromium chromium-driver` (.ci/run does this in CI)"
)
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
]
# The page's state, read in the browser: the first heading without its permalink, and every image.
READ_PAGE = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = "eager"; });
Promise.all(images.map(img => img.decode().catch(() => null))).then(() => {
  const h1 = document.querySelector("h1");
  let title = null;
  if (h1) {
    const copy = h1.cloneNode(true);
    copy.querySelectorAll(".headerlink").forEach(link => link.remove());
    title = copy.textContent.replace(/\\s+/g, " ").trim();
  }
  done({
    title: title,
    images: images.map(img => ({src: img.src, complete: img.complete, width: img.naturalWidth})),
    outputImages: document.querySelectorAll(".cell_output img").length,
    outputTables: document.querySelectorAll(".cell_output table").length,
  });
});
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module by the code behind `make book`."""
    out = tmp_path_factory.mktemp("book")
    code, messages = build_book.build(out)
    assert code == 0, "the book did not build:\n" + "\n".join(messages)
    return out / "html"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    """The site served over HTTP on 127.0.0.1, on a free port, from a thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Debian Chromium driven by ChromeDriver, recording the console."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip(INSTALL)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROME_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _open(browser: Any, url: str) -> tuple[dict[str, Any], list[str]]:
    """Load a page; what READ_PAGE reads of it, and the console's errors."""
    browser.get_log("browser")  # forget what earlier pages logged
    browser.get(url)
    state = browser.execute_async_script(READ_PAGE)
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    return state, errors


def _stored_outputs(path: Path) -> tuple[int, int]:
    """(images, HTML tables) among a notebook's stored outputs."""
    images = tables = 0
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            images += any(key.startswith("image/") for key in data)
            tables += json.dumps(data.get("text/html", "")).count("<table")
    return images, tables


@pytest.mark.parametrize("notebook", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_page_in_chromium(notebook: Path, browser: Any, server: str, tmp_path: Path) -> None:
    state, errors = _open(browser, f"{server}/notebooks/{notebook.stem}.html")
    browser.save_screenshot(str(tmp_path / f"{notebook.stem}.png"))
    assert (tmp_path / f"{notebook.stem}.png").stat().st_size > 0
    assert not errors, f"console errors on {notebook.stem}: {errors}"
    assert state["title"] == build_book.lesson_title(notebook)
    broken = [image["src"] for image in state["images"] if not image["complete"] or image["width"] <= 0]
    assert not broken, f"images that did not load: {broken}"
    images, tables = _stored_outputs(notebook)
    assert state["outputImages"] >= images > 0, "every stored figure is on the page"
    assert state["outputTables"] >= tables, "every stored table is on the page"


def test_other_pages_in_chromium(browser: Any, server: str, tmp_path: Path) -> None:
    for page in OTHER_PAGES:
        state, errors = _open(browser, f"{server}/{page}.html")
        browser.save_screenshot(str(tmp_path / f"{page.replace('/', '-')}.png"))
        assert not errors, f"console errors on {page}: {errors}"
        assert state["title"], f"{page} has no heading"
        broken = [image["src"] for image in state["images"] if not image["complete"] or image["width"] <= 0]
        assert not broken, f"images that did not load on {page}: {broken}"


def test_site_follows_course_order(site: Path) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    entries = [f"notebooks/{p.stem}.html" for p in LESSONS]
    entries += [
        "exercises.html",
        "docs/instructor_guide.html",
        "docs/benchmarks.html",
        "docs/architecture.html",
        "docs/paper.html",
        "docs/book.html",
        "api/index.html",
    ]
    positions = [index.find(f'href="{entry}"') for entry in entries]
    assert -1 not in positions, [e for e, p in zip(entries, positions) if p == -1]
    assert positions == sorted(positions)


def test_exercise_notebooks_are_shown_as_students_receive_them(site: Path) -> None:
    exercises = build_book.exercise_notebooks(ROOT)
    assert exercises, "no exercise notebook found"
    index = (site / "exercises.html").read_text(encoding="utf-8")
    for path in exercises:
        page = (site / "notebooks" / "exercises" / f"{path.stem}.html").read_text(encoding="utf-8")
        assert f'href="notebooks/exercises/{path.stem}.html"' in index, path.name
        assert "YOUR CODE HERE" in page and "YOUR ANSWER HERE" in page, path.name
        assert "BEGIN SOLUTION" not in page and "HIDDEN TESTS" not in page, path.name
        lesson = path.stem.removesuffix("_exercises")
        assert f'href="../{lesson}.html"' in page, f"{path.name} does not link back to its lesson"
        lesson_page = (site / "notebooks" / f"{lesson}.html").read_text(encoding="utf-8")
        assert f'href="exercises/{path.stem}.html"' in lesson_page, f"{lesson} does not link {path.name}"


def test_student_version_drops_solutions_hidden_tests_answers_and_outputs() -> None:
    graded = {"nbgrader": {"solution": True, "grade": True, "grade_id": "a", "points": 1}}
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "def f(x):\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION",
                outputs=[nbformat.v4.new_output("stream", text="42\n")],
                execution_count=1,
            ),
            nbformat.v4.new_code_cell(
                "assert f(1)\n### BEGIN HIDDEN TESTS\nassert f(2) == 42\n### END HIDDEN TESTS"
            ),
            nbformat.v4.new_markdown_cell("The model answer.", metadata=graded),
        ]
    )
    cells = build_book.student_version(notebook).cells
    assert cells[0].source == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert cells[0].outputs == [] and cells[0].execution_count is None
    assert cells[1].source == "assert f(1)"
    assert cells[2].source == "YOUR ANSWER HERE"


def test_api_reference_covers_every_module(site: Path) -> None:
    modules = build_book.package_modules()
    assert "vbert.tasks.zero_shot" in modules and not any(m.endswith("__main__") for m in modules)
    missing = [m for m in modules if m != "vbert" and not (site / "api" / f"{m}.html").exists()]
    assert not missing


def _fixture_repository(root: Path) -> None:
    """A repository with one broken link, one missing image and one unresolved cross-reference."""
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "notebooks").mkdir()
    (root / "docs").mkdir()
    (root / "README.md").write_text("# Fixture\n\nSee [a page that does not exist](docs/missing.md).\n")
    for name in ("instructor_guide", "benchmarks", "paper"):
        (root / "docs" / f"{name}.md").write_text(f"# {name}\n")
    (root / "docs" / "architecture.md").write_text("# Architecture\n\n![the map](no-such-image.png)\n")
    (root / "fixture_pkg").mkdir()
    (root / "fixture_pkg" / "__init__.py").write_text(
        '"""A package."""\n\n\ndef run() -> None:\n    """Calls :func:`vbert.no_such_function`."""\n'
    )


def test_broken_link_missing_image_and_unresolved_reference_fail_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    _fixture_repository(root)
    monkeypatch.syspath_prepend(str(root))
    code, messages = build_book.build(tmp_path / "out", root=root, package="fixture_pkg", jobs="1")
    text = "\n".join(messages)
    assert code != 0
    assert "README.md" in text and "docs/missing.md" in text  # named by the repository's file
    assert "docs/architecture.md" in text and "no-such-image.png" in text
    assert "vbert.no_such_function" in text


def test_widgets_are_refused_and_unused_widget_state_dropped(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 00 · A lesson")])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(notebook, tmp_path / "00_a.ipynb")
    assert build_book.stage_notebook(tmp_path / "00_a.ipynb", tmp_path / "staged.ipynb") is None
    assert "widgets" not in nbformat.read(tmp_path / "staged.ipynb", as_version=4).metadata

    view = nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {}})
    notebook.cells.append(nbformat.v4.new_code_cell("bar", outputs=[view]))
    nbformat.write(notebook, tmp_path / "01_b.ipynb")
    problem = build_book.stage_notebook(tmp_path / "01_b.ipynb", tmp_path / "staged.ipynb")
    assert problem and "notebooks/01_b.ipynb" in problem and "widget" in problem


def test_pages_workflow_publishes_what_make_book_builds() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text(encoding="utf-8"))
    steps = workflow["jobs"]["build"]["steps"]
    assert [step.get("run") for step in steps if "run" in step] == ["make book"]
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "build/book/html"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "tools/build_book.py --out build/book" in makefile
