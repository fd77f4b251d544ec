"""Shared test settings: hypothesis runs without deadlines (compilation makes timing noisy),
and in CI it is derandomized so a run is reproducible.

The CUDA tests run on a real GPU where the machine has NVIDIA's driver, and in numba's CUDA
simulator everywhere else: ``NUMBA_ENABLE_CUDASIM`` must be set before numba is first
imported, so it is decided here, before any test module imports graphc (set it yourself to
choose)."""

import ctypes.util
import os

from hypothesis import settings

if "NUMBA_ENABLE_CUDASIM" not in os.environ and not ctypes.util.find_library("cuda"):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
