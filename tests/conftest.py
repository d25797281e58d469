"""Test-session settings shared by the whole suite.

Hypothesis: in CI (the ``CI`` environment variable set, as CI services and
``.ci/run`` do) the property tests are derandomized, so that a build fails or
passes for the code, not for the examples drawn that day; local runs draw fresh
examples each time and so keep exploring. ``HYPOTHESIS_PROFILE`` picks a profile
explicitly.
"""

from __future__ import annotations

import os

from hypothesis import settings

# Explicit rather than relying on hypothesis's own CI detection (only in recent
# releases), and "dev" from the library default, not from whatever is loaded now.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", parent=settings.get_profile("default"), derandomize=False)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)
