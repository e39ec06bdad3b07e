"""Where Numba keeps the compiled kernels: a folder named by the kernels' sources.

Numba's on-disk cache checks only the file of the function it loads. A kernel of
``experiments/network_shift.py`` is stored with the code of ``nn/chain.py`` that it
calls compiled in, so after a change to ``chain.py`` (a ``git pull``, a branch
switch) Numba would still load the old compiled code and print other numbers for
the same seed. Here the cache lives in ``__pycache__/numba-<digest>`` of this
package (or of ``NUMBA_CACHE_DIR`` when it is set), the digest being a hash of
every module that holds kernels: any change to one of them starts an empty
cache, and the folders of other digests are removed.
"""
import hashlib
import os
import re
import shutil

import numba

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the whole simulator package
PREFIX = "numba-"
# A module holds kernels when it decorates with simulator.core.jit (or calls numba.njit itself).
KERNEL_MARK = re.compile(rb"^@(kernel|threaded|inline)\b|njit", re.M)


def _kernel_modules(root):
    """``(relative path, contents)`` of each module under ``root`` that defines Numba kernels, sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    text = f.read()
                if KERNEL_MARK.search(text):
                    found.append((os.path.relpath(path, root), text))
    return sorted(found)


def kernel_sources(root=None):
    """The modules under ``root`` (this package) that define Numba kernels, as sorted relative paths."""
    return [rel for rel, _ in _kernel_modules(PACKAGE if root is None else root)]


def digest(root=None):
    """A hash of the names and contents of :func:`kernel_sources` (16 hex digits)."""
    h = hashlib.sha256()
    for rel, text in _kernel_modules(PACKAGE if root is None else root):
        h.update(rel.replace(os.sep, "/").encode() + b"\0" + text + b"\0")
    return h.hexdigest()[:16]


def use_kernel_cache():
    """Point Numba's cache at the folder of the current digest (before any kernel is defined); return it."""
    own = not numba.config.CACHE_DIR
    base = os.path.join(PACKAGE, "__pycache__") if own else numba.config.CACHE_DIR
    folder = os.path.join(base, PREFIX + digest())
    numba.config.CACHE_DIR = folder
    if own and os.path.isdir(base):
        for name in os.listdir(base):
            if name.startswith(PREFIX) and os.path.join(base, name) != folder:
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    return folder
