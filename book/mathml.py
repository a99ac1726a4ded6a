"""Math written as MathML when the site is built, so pages need no script and no network to show it.

Browsers draw MathML themselves. LaTeX that cannot be converted is a build warning naming the page
(an error, since the book is built with -W), never a silently broken formula.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.locale import _
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number
from sphinx.writers.html5 import HTML5Translator

logger = logging.getLogger(__name__)


def to_mathml(latex: str, node: nodes.Element, display: str) -> str:
    """MathML of one formula; a warning at the node's page (and the LaTeX shown as code) if it fails."""
    try:
        mathml = convert(latex, display=display)
    except Exception as error:  # latex2mathml raises many kinds on LaTeX it does not know
        mathml = ""
        reason = f"{type(error).__name__}: {error}"
    else:
        reason = "unsupported command" if "<merror" in mathml else ""
    if reason:
        logger.warning("math %r cannot be written as MathML (%s)", latex, reason, location=node)
        return f"<code>{latex}</code>"
    return mathml


def visit_inline(self: HTML5Translator, node: nodes.math) -> None:
    """Inline math: a span holding the formula's MathML."""
    self.body.append(self.starttag(node, "span", "", CLASS="math notranslate"))
    self.body.append(to_mathml(node.astext(), node, "inline") + "</span>")
    raise nodes.SkipNode


def visit_block(self: HTML5Translator, node: nodes.math_block) -> None:
    """Display math: a div holding each equation's MathML, with its number when it has one."""
    self.body.append(self.starttag(node, "div", CLASS="math notranslate"))
    if node["number"]:
        number = get_node_equation_number(self, node)
        self.body.append(f'<span class="eqno">({number})')
        self.add_permalink_ref(node, _("Link to this equation"))
        self.body.append("</span>")
    for part in (p for p in node.astext().split("\n\n") if p.strip()):
        self.body.append(to_mathml(part, node, "block"))
    self.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the renderer; conf.py selects it with html_math_renderer = "mathml"."""
    app.add_html_math_renderer("mathml", (visit_inline, None), (visit_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
