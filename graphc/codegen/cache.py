"""The on-disk kernel cache.

Each kernel's source is written to ``<cache dir>/k_<hash>.py``, where the hash covers the
source, the numba version, the Python version and the host CPU, and is imported from there with
``numba.njit(cache=True)``, so numba keeps the machine code beside it and a second process
loads a kernel in milliseconds instead of compiling it again.

Writes go to a temporary file and are renamed into place, so readers never see half a file and
two processes writing the same kernel write the same bytes. Before importing, the file is read
back and compared with the source we generated: a truncated, corrupt or tampered file is
rewritten, never trusted.

numba does not check its own cache files (a corrupt one raises from deep inside numba), so once
a kernel has run, ``seal`` records a checksum of numba's files for it in ``k_<hash>.seal``.
Before a kernel is imported, numba files that do not match their seal (or have none) are
deleted, and numba compiles afresh.
"""

import hashlib
import importlib.util
import os
import platform
import sys
import tempfile

import llvmlite.binding
import numba

_loaded: dict = {}  # hash -> compiled dispatcher, for this process


def cache_dir() -> str:
    """``GRAPHC_CACHE_DIR``, else the user's cache directory."""
    path = os.environ.get("GRAPHC_CACHE_DIR")
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "graphc")
    return path


def _intrinsics_source() -> str:
    """Kernels import graphc's intrinsics; numba's cache would not notice them change, our key does."""
    with open(os.path.join(os.path.dirname(__file__), "intrinsics.py"), encoding="utf-8") as f:
        return f.read()


_TAG = (f"{numba.__version__}|{platform.python_version()}|{llvmlite.binding.get_host_cpu_name()}|"
        f"{hashlib.sha256(_intrinsics_source().encode()).hexdigest()}")


def kernel_key(source: str) -> str:
    return hashlib.sha256(f"{_TAG}\n{source}".encode()).hexdigest()[:24]


def _write_atomic(path: str, text: str, suffix: str = ".py") -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _numba_files(directory: str, key: str) -> list:
    pycache = os.path.join(directory, "__pycache__")
    try:
        names = os.listdir(pycache)
    except OSError:
        return []
    return sorted(os.path.join(pycache, n) for n in names if n.startswith(f"k_{key}.") and n.endswith((".nbi", ".nbc")))


def _checksums(files: list) -> str:
    lines = []
    for path in files:
        try:
            with open(path, "rb") as f:
                lines.append(f"{os.path.basename(path)} {hashlib.sha256(f.read()).hexdigest()}")
        except OSError:
            lines.append(f"{os.path.basename(path)} unreadable")
    return "\n".join(lines) + "\n"


def _drop_unsealed(directory: str, key: str) -> None:
    files = _numba_files(directory, key)
    if files and _read(os.path.join(directory, f"k_{key}.seal")) != _checksums(files):
        for path in files:
            try:
                os.unlink(path)
            except OSError:
                pass


def seal(source: str) -> None:
    """Record checksums of numba's cache files for this kernel (call after it has run)."""
    directory, key = cache_dir(), kernel_key(source)
    files = _numba_files(directory, key)
    path = os.path.join(directory, f"k_{key}.seal")
    if files and _read(path) != _checksums(files):
        _write_atomic(path, _checksums(files), suffix=".seal")


def load_kernel(source: str, entry: str = "kernel"):
    """The compiled function ``entry`` defined by ``source``, from the cache when possible."""
    key = kernel_key(source)
    if key in _loaded:
        return _loaded[key]
    directory = cache_dir()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"k_{key}.py")
    if _read(path) != source:
        _write_atomic(path, source)
    _drop_unsealed(directory, key)
    name = f"graphc_kernels.k_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache locator wants the module importable by name
    spec.loader.exec_module(module)
    _loaded[key] = getattr(module, entry)
    return _loaded[key]
