"""Sphinx configuration of the course website (`make book`; tools/build_book.py gathers the sources).

docs/book.md explains the choices: Sphinx with MyST-NB (stored outputs, no execution), autodoc for
the API reference, the Furo theme, and math written as MathML at build time.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

import vbert

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's extension: mathml

project = "vbert"
author = "The vbert developers"
copyright = "the vbert developers, MIT license"
release = version = vbert.__version__

# githubpages writes .nojekyll, so GitHub Pages serves the _static and _images folders as they are
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.githubpages", "mathml"]
root_doc = "index"
exclude_patterns: list[str] = []
language = "en"

# Notebooks: show what is stored; never run a kernel while building.
nb_execution_mode = "off"
nb_merge_streams = True  # stdout printed by several calls of one cell reads as one block
nb_ipywidgets_js: dict[str, dict[str, str]] = {}  # no widget scripts from a CDN (tools/build_book.py)
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # links like notebooks/01_attention.ipynb#exercises resolve, and are checked

# Every reference must resolve (-n, and -W makes each miss an error). Names outside this package
# (torch.Tensor, numpy.ndarray, pathlib.Path, ...) could only resolve through intersphinx, which
# downloads the other projects' inventories: the build is offline, so they are left unlinked. A
# name of this package that does not resolve is still an error.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!vbert\.)[A-Za-z_][\w]*\..+"),  # dotted names outside vbert
    # bare names of other libraries: when one name of a signature is imported only under
    # `if TYPE_CHECKING:`, autodoc shows the whole signature as written (`path: str | Path`)
    (r"py:.*", r"(Tensor|Module|ndarray|Path|Iterator|Iterable|Sequence|Mapping|Callable|Any)"),
    (r"py:class", r"vbert\.[\w.]+\.[A-Z]"),  # type variables (T in `progress(items: Iterable[T])`)
]

# API reference: members chosen by where they are defined (a module's __all__ may re-export names
# documented on their own module's page, which would document them twice).
autodoc_default_options = {"ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
default_role = "code"  # docstrings mark code with single backquotes, as in Markdown

html_theme = "furo"
html_title = f"vbert {release}: VideoBERT, built from scratch"
html_math_renderer = "mathml"
html_static_path = ["static"]
html_css_files = ["book.css"]
html_favicon = "static/favicon.svg"
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None


def dataclass_defaults(app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: str | None,
                       return_annotation: str | None) -> tuple[str | None, str | None] | None:
    """Show a dataclass field's default factory as a call (`list()`, `VideoConfig()`), not `<factory>`.

    `<factory>` is not Python, so Sphinx could not parse such a signature and split it at every comma.
    """
    if what != "class" or not signature or "<factory>" not in signature or not dataclasses.is_dataclass(obj):
        return None
    for field in dataclasses.fields(obj):
        if field.init and field.default_factory is not dataclasses.MISSING:
            factory = getattr(field.default_factory, "__name__", "<lambda>")
            signature = signature.replace("<factory>", "..." if factory == "<lambda>" else f"{factory}()", 1)
    return signature, return_annotation


def setup(app: Sphinx) -> None:
    """Hooks of this book's build."""
    app.connect("autodoc-process-signature", dataclass_defaults)
