"""The hypothesis profile of the session (tests/conftest.py): derandomized in CI."""

from __future__ import annotations

import os

from hypothesis import settings


def test_ci_profile_is_derandomized_and_chosen_by_the_ci_variable():
    assert settings.get_profile("ci").derandomize is True
    assert settings.get_profile("dev").derandomize is False
    if not os.environ.get("HYPOTHESIS_PROFILE"):
        assert settings.default.derandomize is bool(os.environ.get("CI"))
