"""MkDocs hooks of the sklmixed site (named in mkdocs.yml; not a page of the site).

``mkdocs build -f path/to/mkdocs.yml`` must work from any working directory, but
two parts of the build resolve paths against the working directory rather than
against mkdocs.yml: mkdocs-gallery refuses to run unless the working directory is
the project root, and pymdownx.snippets reads its ``base_path`` relative to it.
Moving to the folder of mkdocs.yml before any plugin runs serves both.
"""

from __future__ import annotations

import os
import re
import sys
from html import escape
from pathlib import Path

from mkdocs.plugins import event_priority


@event_priority(100)  # before mkdocs-gallery and mkdocstrings (default priority 0)
def on_config(config):
    root = Path(config.config_file_path).resolve().parent
    os.chdir(root)
    # The gallery runs the examples in this process: they (and the API page) must
    # show the source tree being documented, not another installed copy of it.
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    # Figures are written to files; no display is needed (nor present in CI).
    os.environ["MPLBACKEND"] = "Agg"
    return config


# An estimator page: docs/api/<Estimator>.md
_ESTIMATOR_PAGE = re.compile(r"^api/(\w+)\.md$")
_ROW = re.compile(
    r'(<tr class="doc-section-item">\s*<td>\s*<code>(?P<name>\w+)</code>\s*</td>\s*<td>)'
    r"(?P<type>.*?)(</td>)",
    re.S,
)


def on_page_content(html, page, config, files):
    """Show the estimators' parameter and attribute types as their docstrings
    write them (``int, default=1``).

    scikit-learn's HTML repr links each parameter to the text "name" followed by
    its docstring type line (a text fragment); mkdocstrings shows the type
    without the default (which it puts in a column of its own), so the link
    would not land. Only the class's own entries change.
    """
    match = _ESTIMATOR_PAGE.match(page.file.src_uri)
    if match is None:
        return html
    import sklmixed

    cls = getattr(sklmixed, match.group(1))
    types = dict(re.findall(r"^    (\w+) : (.+)$", cls.__doc__ or "", flags=re.M))

    def retype(row):
        kind = types.get(row.group("name"))
        if kind is None:
            return row.group(0)
        return f"{row.group(1)}<code>{escape(kind)}</code>{row.group(4)}"

    return _ROW.sub(retype, html)
