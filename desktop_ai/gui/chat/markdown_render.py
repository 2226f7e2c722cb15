"""An answer's Markdown turned into what the message view shows: runs of HTML for a QTextBrowser, with the
top-level code blocks cut out (each gets a monospace view and a Copy button of its own).

markdown-it-py parses it (CommonMark plus GitHub's tables and strikethrough). Raw HTML in an answer is shown
as text, never interpreted: a model's output is not trusted markup. An answer still streaming is parsed as
it is: an unclosed code fence runs to the end, so the code being written already shows as code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

HTML = "html"
CODE = "code"
CODE_TOKENS = ("fence", "code_block")
# Qt's rich text draws table borders only from these attributes (it has no CSS border-collapse for cells).
TABLE_ATTRIBUTES = {"border": "1", "cellspacing": "0", "cellpadding": "4"}


@dataclass(frozen=True)
class Segment:
    """One piece of a rendered message, in order: HTML, or one code block (its text, not HTML)."""

    kind: str  # HTML or CODE
    content: str
    language: str = ""


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(["table", "strikethrough"])


def render_segments(text: str) -> list[Segment]:
    """The message as HTML runs and code blocks. Code blocks nested in a list or a quote stay in the HTML
    (as a monospace <pre>): cutting them out would break the list around them."""
    parser = _parser()
    env: dict = {}
    tokens = parser.parse(text, env)
    for token in tokens:
        if token.type == "table_open":
            for name, value in TABLE_ATTRIBUTES.items():
                token.attrSet(name, value)
    segments: list[Segment] = []
    run: list[Token] = []

    def flush() -> None:
        if run:
            html = parser.renderer.render(run, parser.options, env)
            if html.strip():
                segments.append(Segment(HTML, html))
            run.clear()

    for token in tokens:
        if token.type in CODE_TOKENS and token.level == 0:
            flush()
            language = token.info.strip().split(" ")[0] if token.type == "fence" else ""
            segments.append(Segment(CODE, token.content.rstrip("\n"), language))
        else:
            run.append(token)
    flush()
    return segments
