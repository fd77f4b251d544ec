"""The kernel cache's layout and size bound (``codegen/cache.py``): each kernel's files in a
shard named by its hash's first two digits; least recently used kernels evicted at exit from
a process that wrote kernels, down to ``GRAPHC_CACHE_MAX_MB``."""

import os
import subprocess
import sys
import textwrap

import pytest

from graphc.codegen import cache


@pytest.fixture
def private(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHC_CACHE_KEY_FILE", str(tmp_path / "config" / "cache.key"))
    monkeypatch.setattr(cache, "_loaded", {})
    monkeypatch.setattr(cache, "_fallback", {})
    monkeypatch.setattr(cache, "_secrets", {})
    return tmp_path / "cache"


def _source(k: int) -> str:
    return f"import numba\n\n\n@numba.njit(cache=True)\ndef kernel(x):\n    return x + {k}\n"


def _load(k: int) -> str:
    """Load (compile) kernel ``k`` and seal its numba files; its key."""
    source = _source(k)
    assert cache.load_kernel(source)(1) == 1 + k
    cache.seal(source)
    return cache.kernel_key(source)


def _files(directory, key) -> list:
    return sorted(os.path.join(root, n) for root, _, names in os.walk(directory) for n in names
                  if n.startswith(f"k_{key}."))


def test_a_kernels_files_live_in_the_shard_of_its_hash(private):
    key = _load(1)
    files = _files(private, key)
    assert {os.path.relpath(os.path.dirname(f), private) for f in files} == {key[:2], f"{key[:2]}/__pycache__"}
    assert any(f.endswith(".py") for f in files) and any(f.endswith(".nbi") for f in files)
    assert any(f.endswith(".seal") for f in files)
    assert os.stat(os.path.join(private, key[:2])).st_mode & 0o777 == 0o700


def test_eviction_drops_the_least_recently_used_kernels_first(private):
    keys = [_load(k) for k in range(3)]
    for age, key in enumerate(keys):  # kernel 0 used longest ago
        path = os.path.join(cache.shard(str(private), key), f"k_{key}.py")
        os.utime(path, (1e9 + age, 1e9 + age))
    sizes = {key: sum(os.path.getsize(f) for f in _files(private, key)) for key in keys}
    bound = sizes[keys[1]] + sizes[keys[2]]
    assert cache.evict(str(private), bound) == [keys[0]]
    assert _files(private, keys[0]) == []
    assert all(_files(private, key) for key in keys[1:])
    assert cache.evict(str(private), bound) == []  # within the bound now
    cache._loaded.clear()
    assert _load(0) == keys[0] and cache.is_cached(_source(0))  # an evicted kernel compiles again


def test_a_load_marks_its_kernel_used(private):
    key = _load(5)
    path = os.path.join(cache.shard(str(private), key), f"k_{key}.py")
    os.utime(path, (1e9, 1e9))
    cache._loaded.clear()
    _load(5)
    assert os.path.getmtime(path) > 1e9 + 1


def test_no_bound_at_zero(private):
    _load(6)
    assert cache.evict(str(private), 0) == []


def test_a_process_that_wrote_kernels_evicts_at_exit_down_to_the_bound(private, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent('''
        import numba
        from graphc.codegen import cache
        for k in range(4):
            source = f"import numba\\n\\n\\n@numba.njit(cache=True)\\ndef kernel(x):\\n    return x + {k}\\n"
            cache.load_kernel(source)(1)
            cache.seal(source)
    '''))
    env = dict(os.environ, GRAPHC_CACHE_MAX_MB=str(1 / 1024))  # 1 KiB: fewer than one kernel's files
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=300)
    left = [n for _, _, names in os.walk(private) for n in names if n.startswith("k_")]
    assert left == [], left
    env["GRAPHC_CACHE_MAX_MB"] = "0"
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=300)
    assert len([n for _, _, names in os.walk(private) for n in names if n.endswith(".py")]) == 4


def test_a_bound_that_is_not_a_number_warns_and_keeps_the_default(monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_MAX_MB", "lots")
    with pytest.warns(cache.GraphcWarning, match="GRAPHC_CACHE_MAX_MB"):
        assert cache._max_bytes() == 1024 << 20
