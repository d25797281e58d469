"""mkdocs-gallery's configuration script (``conf_script`` in mkdocs.yml).

The gallery's folders are given here as absolute paths built from this file's
location: in mkdocs.yml, mkdocs-gallery would resolve them against the working
directory, and the site must build from any directory.
"""

from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent

conf = {
    "examples_dirs": [str(_ROOT / "examples")],
    "gallery_dirs": [str(_ROOT / "docs" / "generated" / "gallery")],
}
