"""The on-disk kernel cache.

Each kernel's source is written to ``<cache dir>/<h[:2]>/k_<h>.py``, where the hash ``h``
covers the source, the numba version, the Python version and the host CPU, and is run from
there with ``numba.njit(cache=True)``, so numba keeps the machine code beside it (in that
shard's ``__pycache__``) and a second process loads a kernel in milliseconds instead of
compiling it again. The 256 shards keep the directories a load lists small (a flat cache of
9.3k files took 4.5 s of one compile to list).

The cache is bounded: when a process has written kernels, it evicts the least recently used
ones (a load touches its kernel's file) until the cache holds at most ``GRAPHC_CACHE_MAX_MB``
megabytes (default 1024; 0 turns eviction off) when it exits.

Trust model: the cache directory must be owned by the current user and not writable by group
or others (``_trusted``); one that is not, or that cannot be used at all (a file, read-only,
cannot be created), is replaced for the process by a private temporary directory, with a
``GraphcWarning`` naming ``GRAPHC_CACHE_DIR``. Within a trusted directory nothing is run
unchecked:
- Writes go to a temporary file and are renamed into place, so readers never see half a file
  and two processes writing the same kernel write the same bytes.
- A kernel is never imported: its file is read, compared with the source we generated (a
  truncated, corrupt or tampered file is rewritten), and that very text is compiled and run
  (``exec``), with the file's path as its name so numba's cache finds its files beside it.
  Python's bytecode (``__pycache__/*.pyc``) is never read or written.
- numba's cache files (``.nbi``, ``.nbc``: pickles numba unpickles) are sealed once numba has
  compiled or loaded a kernel (by this process or a compile worker, see ``warm``): ``seal``
  writes an HMAC-SHA256 of them to ``k_<hash>.seal``, keyed by a per-user secret kept outside
  the cache directory (``_secret``: ``GRAPHC_CACHE_KEY_FILE``, else
  ``$XDG_CONFIG_HOME/graphc/cache.key``), so whoever can write the cache but not read the key
  cannot forge a seal. numba files without a valid seal are deleted before the kernel's module
  runs, and numba compiles afresh.
- Any failure while numba loads its cache (a truncated or corrupt file: EOFError, pickle
  errors, anything) deletes the kernel's numba files and compiles it afresh: never a crash.
"""

import atexit
import hashlib
import hmac
import os
import platform
import shutil
import sys
import tempfile
import threading
import types
import warnings

import llvmlite.binding
import numba

from ..errors import GraphcWarning

_loaded: dict = {}  # hash -> compiled dispatcher, for this process
_lock = threading.RLock()
_fallback: dict = {}  # configured cache directory -> the private temporary one used instead
_secrets: dict = {}  # key file -> its secret, for this process


def _user_path(variable: str, xdg: str, home: str, *parts: str) -> str:
    """``$variable``, else ``parts`` under the XDG base directory ``$xdg`` (default ``~/home``)."""
    path = os.environ.get(variable)
    if path:
        return path
    return os.path.join(os.environ.get(xdg) or os.path.join(os.path.expanduser("~"), home), *parts)


def _configured_dir() -> str:
    return _user_path("GRAPHC_CACHE_DIR", "XDG_CACHE_HOME", ".cache", "graphc")


def _trusted(path: str) -> str | None:
    """Why the existing directory ``path`` cannot be the cache (None: it can)."""
    st = os.stat(path)
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by the current user (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return f"it is writable by group or others (mode {st.st_mode & 0o777:o})"
    if not os.access(path, os.W_OK | os.X_OK):
        return "it is not writable"
    return None


def _unusable(path: str) -> str | None:
    """Why ``path`` cannot be the cache directory, creating it (mode 0700) if need be."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        return _trusted(path)
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"


def _fall_back(configured: str, reason: str) -> str:
    """The private temporary cache used instead of ``configured`` for the rest of the process
    (warned about once)."""
    with _lock:
        if configured not in _fallback:
            private = tempfile.mkdtemp(prefix="graphc-cache-")
            atexit.register(shutil.rmtree, private, ignore_errors=True)
            _fallback[configured] = private
            warnings.warn(f"graphc: cannot use the kernel cache directory {configured!r} "
                          f"(GRAPHC_CACHE_DIR): {reason}; using a private temporary cache for "
                          f"this process, {private!r}", GraphcWarning, stacklevel=3)
        return _fallback[configured]


def cache_dir() -> str:
    """The kernel cache directory: ``GRAPHC_CACHE_DIR``, else the user's cache directory, when it
    is usable and trusted, else a private temporary one for this process."""
    configured = _configured_dir()
    if configured in _fallback:
        return _fallback[configured]
    reason = _unusable(configured)
    return configured if reason is None else _fall_back(configured, reason)


def _key_file() -> str:
    return _user_path("GRAPHC_CACHE_KEY_FILE", "XDG_CONFIG_HOME", ".config", "graphc", "cache.key")


def _read_secret(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise PermissionError(f"{path} is not private to the current user (mode "
                                  f"{st.st_mode & 0o777:o}, uid {st.st_uid})")
        secret = f.read()
    if len(secret) != 32:
        raise ValueError(f"{path} does not hold a 32-byte key")
    return secret


def _create_secret(path: str) -> None:
    """Write a fresh key to ``path`` unless it exists: a private temporary file, then a hard link
    (which never replaces a key another process made first)."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-", suffix=".key")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def _secret() -> bytes:
    """The per-user key of the seals (made once); a key of this process alone, with a warning,
    where the key file is unusable (seals then hold only within the process)."""
    path = _key_file()
    with _lock:
        if path not in _secrets:
            try:
                secret = _read_secret(path)
                if secret is None:
                    _create_secret(path)
                    secret = _read_secret(path)
            except (OSError, ValueError) as e:
                secret = None
                warnings.warn(f"graphc: cannot use the kernel cache key {path!r} (GRAPHC_CACHE_KEY_FILE): {e}; "
                              f"numba's cache files are trusted within this process only", GraphcWarning,
                              stacklevel=3)
            _secrets[path] = secret or os.urandom(32)
        return _secrets[path]


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


def shard(directory: str, key: str) -> str:
    """The directory of kernel ``key``'s files (its source, seal, and numba's ``__pycache__``)."""
    return os.path.join(directory, key[:2])


def _make_shard(directory: str, key: str) -> str:
    """``shard``, made private (0700) with its ``__pycache__``, so numba's files are too."""
    path = shard(directory, key)
    for place in (path, os.path.join(path, "__pycache__")):  # (makedirs gives its mode to the leaf only)
        os.makedirs(place, mode=0o700, exist_ok=True)
    return path


def _numba_files(directory: str, key: str) -> list:
    pycache = os.path.join(shard(directory, key), "__pycache__")
    try:
        names = os.listdir(pycache)
    except OSError:
        return []
    return sorted(os.path.join(pycache, n) for n in names if n.startswith(f"k_{key}.") and n.endswith((".nbi", ".nbc")))


def _seal_text(key: str, files: list) -> str:
    """The seal of numba's ``files`` for kernel ``key``: an HMAC-SHA256 of their names and
    contents, keyed by ``_secret``."""
    mac = hmac.new(_secret(), f"graphc kernel seal 1\n{key}\n".encode(), hashlib.sha256)
    for path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = None
        name = os.path.basename(path)
        mac.update(f"{name} {'unreadable' if data is None else hashlib.sha256(data).hexdigest()}\n".encode())
    return f"hmac-sha256 {mac.hexdigest()}\n"


def _sealed(directory: str, key: str, files: list) -> bool:
    found = _read(os.path.join(shard(directory, key), f"k_{key}.seal"))
    return found is not None and hmac.compare_digest(found, _seal_text(key, files))


def _seal_state(directory: str, key: str) -> tuple[list, bool]:
    """numba's files for kernel ``key``, and whether there are some and their seal holds."""
    files = _numba_files(directory, key)
    return files, bool(files) and _sealed(directory, key, files)


def _drop_numba_files(directory: str, key: str) -> None:
    for path in _numba_files(directory, key):
        try:
            os.unlink(path)
        except OSError:
            pass


def _drop_unsealed(directory: str, key: str) -> None:
    files, sealed = _seal_state(directory, key)
    if files and not sealed:
        _drop_numba_files(directory, key)


def seal(source: str) -> None:
    """Record the seal of numba's cache files for this kernel (call once numba has compiled or
    loaded it: its files are written by then)."""
    directory, key = cache_dir(), kernel_key(source)
    files, sealed = _seal_state(directory, key)
    if files and not sealed:
        _write_atomic(os.path.join(shard(directory, key), f"k_{key}.seal"), _seal_text(key, files), suffix=".seal")


def is_cached(source: str) -> bool:
    """Whether numba's files for this kernel are on disk and sealed, so that loading it takes
    milliseconds rather than a compile (``codegen.warm`` counts and farms out the others)."""
    return _seal_state(cache_dir(), kernel_key(source))[1]


def _guard(dispatcher, directory: str, key: str) -> None:
    """Make a failed load of ``dispatcher`` from numba's cache (anything numba raises: a sealed
    but truncated file, say) delete the kernel's numba files and answer "not cached", so numba
    compiles afresh. (Files without a valid seal were deleted before the kernel's module ran.)"""
    cache = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "load_overload", None)
    if load is None or getattr(load, "_graphc_guarded", False):
        return

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception:  # noqa: BLE001 - a broken cache entry is recompiled, whatever numba raised
            _drop_numba_files(directory, key)
            return None
    load_overload._graphc_guarded = True
    cache.load_overload = load_overload


def load_kernel(source: str, entry: str = "kernel"):
    """The compiled function ``entry`` defined by ``source``, from the cache when possible."""
    key = kernel_key(source)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        directory = cache_dir()
        try:
            path = _store(directory, key, source)
        except OSError as e:  # the directory broke since it was checked (full, removed, made read-only)
            directory = _fall_back(_configured_dir(), f"{type(e).__name__}: {e.strerror or e}")
            path = _store(directory, key, source)
        _drop_unsealed(directory, key)
        name = f"graphc_kernels.k_{key}"
        module = types.ModuleType(name)
        module.__file__ = path
        sys.modules[name] = module  # numba's cache locator wants the module importable by name
        exec(compile(source, path, "exec"), module.__dict__)  # what was checked, never bytecode
        for value in list(module.__dict__.values()):
            _guard(value, directory, key)
        _loaded[key] = getattr(module, entry)
        return _loaded[key]


def _store(directory: str, key: str, source: str) -> str:
    """Kernel ``key``'s file in its shard, written unless it holds ``source`` already, and
    touched: its time is when it was last used, for eviction."""
    path = os.path.join(_make_shard(directory, key), f"k_{key}.py")
    if _read(path) != source:
        _write_atomic(path, source)
        _evict_at_exit(directory)
    else:
        os.utime(path)
    return path


# ---------------------------------------------------------------- the size bound

_DEFAULT_MAX_MB = 1024
_to_evict: set = set()  # cache directories this process wrote kernels into


def _max_bytes() -> int:
    raw = os.environ.get("GRAPHC_CACHE_MAX_MB", "")
    try:
        return max(0, int(float(raw) * (1 << 20))) if raw else _DEFAULT_MAX_MB << 20
    except ValueError:
        warnings.warn(f"graphc: GRAPHC_CACHE_MAX_MB={raw!r} is not a number; using {_DEFAULT_MAX_MB}",
                      GraphcWarning, stacklevel=2)
        return _DEFAULT_MAX_MB << 20


def _evict_at_exit(directory: str) -> None:
    with _lock:
        if not _to_evict:
            atexit.register(_evict_all)
        _to_evict.add(directory)


def _evict_all() -> None:
    for directory in sorted(_to_evict):
        evict(directory, _max_bytes())


def _kernels(directory: str) -> dict:
    """key -> (last used, bytes, paths) of every kernel in the cache's shards."""
    found = {}
    for top in os.scandir(directory):
        if not (top.is_dir(follow_symlinks=False) and len(top.name) == 2):
            continue
        for place in (top.path, os.path.join(top.path, "__pycache__")):
            try:
                entries = list(os.scandir(place))
            except OSError:
                continue
            for e in entries:
                if not (e.name.startswith("k_") and e.is_file(follow_symlinks=False)):
                    continue
                key = e.name[2:].split(".", 1)[0]
                st = e.stat(follow_symlinks=False)
                used, size, paths = found.get(key, (0.0, 0, []))
                used = max(used, st.st_mtime) if e.name.endswith(".py") else used
                found[key] = (used, size + st.st_size, paths + [e.path])
    return found


def evict(directory: str, max_bytes: int) -> list:
    """Delete the least recently used kernels until ``directory`` holds at most ``max_bytes``
    (0: no bound); returns the keys deleted. Kernels loaded in a process keep running there; a
    kernel another process is loading meanwhile is written or compiled again there (its files
    are checked, never trusted)."""
    if max_bytes <= 0:
        return []
    try:
        kernels = _kernels(directory)
    except OSError:
        return []
    total = sum(size for _, size, _ in kernels.values())
    gone = []
    for key, (_, size, paths) in sorted(kernels.items(), key=lambda kv: kv[1][0]):
        if total <= max_bytes:
            break
        for path in paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        total -= size
        gone.append(key)
    return gone
