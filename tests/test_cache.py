"""The kernel cache: named by the kernels' sources, so a changed callee never runs from a stale cache."""
import os

import numba

from simulator.core import cache
from simulator.nn import chain


def _tree(root, kernel="@njit\ndef f(x):\n    return x\n", plain="X = 1\n"):
    os.makedirs(root / "sub", exist_ok=True)
    (root / "sub" / "kernels.py").write_text(kernel)
    (root / "plain.py").write_text(plain)


def test_digest_follows_the_kernel_modules_only(tmp_path):
    _tree(tmp_path)
    assert cache.kernel_sources(tmp_path) == [os.path.join("sub", "kernels.py")]
    first = cache.digest(tmp_path)
    _tree(tmp_path, plain="X = 2\n")  # a module without kernels: the compiled code stays valid
    assert cache.digest(tmp_path) == first
    _tree(tmp_path, kernel="@njit\ndef f(x):\n    return x + 1\n")  # a kernel changed: a new cache
    assert cache.digest(tmp_path) != first
    second = cache.digest(tmp_path)
    _tree(tmp_path, kernel="@kernel\ndef f(x):\n    return x + 2\n")  # the project's own decorator counts
    assert cache.digest(tmp_path) != second
    assert cache.kernel_sources(tmp_path) == [os.path.join("sub", "kernels.py")]


def test_kernels_are_cached_under_the_current_digest():
    folder = numba.config.CACHE_DIR
    assert os.path.basename(folder) == cache.PREFIX + cache.digest()
    assert chain.linear_rows._cache._cache_path.startswith(folder + os.sep)


def test_other_digests_are_removed(tmp_path, monkeypatch):
    _tree(tmp_path)
    stale = tmp_path / "__pycache__" / (cache.PREFIX + "0" * 16)
    stale.mkdir(parents=True)
    (stale / "old.nbi").write_bytes(b"x")
    monkeypatch.setattr(cache, "PACKAGE", str(tmp_path))
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    folder = cache.use_kernel_cache()
    assert folder == str(tmp_path / "__pycache__" / (cache.PREFIX + cache.digest(str(tmp_path))))
    assert not stale.exists()
