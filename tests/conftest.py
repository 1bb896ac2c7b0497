"""Shared test configuration.

Hypothesis explores new examples on every local run; under CI (``CI`` set) it is
derandomized so that a run is reproducible, and it skips the example database.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
