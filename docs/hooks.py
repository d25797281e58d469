"""MkDocs hooks of the sklmixed site (named in mkdocs.yml; not a page of the site).

``mkdocs build -f path/to/mkdocs.yml`` must work from any working directory, but
two parts of the build resolve paths against the working directory rather than
against mkdocs.yml: mkdocs-gallery refuses to run unless the working directory is
the project root, and pymdownx.snippets reads its ``base_path`` relative to it.
Moving to the folder of mkdocs.yml before any plugin runs serves both.
"""

from __future__ import annotations

import os
import sys
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
