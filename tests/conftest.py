"""Shared test settings: hypothesis runs without deadlines (compilation makes timing noisy),
and in CI it is derandomized so a run is reproducible.

The CUDA tests run on a real GPU where the machine has NVIDIA's driver, and in numba's CUDA
simulator everywhere else: ``NUMBA_ENABLE_CUDASIM`` must be set before numba is first
imported, so it is decided here, before any test module imports graphc (set it yourself to
choose).

``cuda_ptx.py`` (every kind of CUDA kernel through numba-cuda for sm_90, in a process with the
simulator off: a minute on one core) starts as soon as the tests that read it are collected,
so that it runs beside the rest of the suite on a second core; the ``for_sm_90`` fixture waits
for it."""

import ctypes.util
import os
import subprocess
import sys
import tempfile

import pytest
from hypothesis import settings

if "NUMBA_ENABLE_CUDASIM" not in os.environ and not ctypes.util.find_library("cuda"):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

SM_90 = pytest.StashKey()  # the running cuda_ptx.py: (process, stdout file, stderr file)


def _start_sm_90():
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # files: no pipe to fill
    script = os.path.join(os.path.dirname(__file__), "cuda_ptx.py")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    return subprocess.Popen([sys.executable, script], stdout=out, stderr=err, text=True, env=env), out, err


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    if any("for_sm_90" in getattr(item, "fixturenames", ()) for item in session.items):
        session.config.stash[SM_90] = _start_sm_90()


def pytest_unconfigure(config):
    process, out, err = config.stash.get(SM_90, (None, None, None))
    if process is not None:
        if process.poll() is None:  # the session ended before a test read it
            process.kill()
        process.wait()
        out.close()
        err.close()


@pytest.fixture(scope="session")
def for_sm_90(pytestconfig):
    """cuda_ptx.py's findings, ``{"lowered": ..., "ptx": ...}``: every kind of kernel typed and
    lowered for sm_90 and, where NVRTC is installed too, compiled to PTX by NVVM (the simulator
    runs kernels as Python and would not notice a kernel numba-cuda cannot type or lower)."""
    if SM_90 not in pytestconfig.stash:
        pytestconfig.stash[SM_90] = _start_sm_90()
    process, out, err = pytestconfig.stash[SM_90]
    process.wait(timeout=900)
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    found = dict(line.split(": ", 1) for line in stdout.splitlines())
    assert set(found) == {"lowered", "ptx"}, stdout
    return found
