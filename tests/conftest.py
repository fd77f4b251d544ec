"""Shared test settings: hypothesis runs without deadlines (compilation makes timing noisy),
and in CI it is derandomized so a run is reproducible."""

import os

from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
