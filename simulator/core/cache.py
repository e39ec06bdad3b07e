"""Where Numba keeps the compiled kernels: a folder named by the kernels' sources.

Numba's on-disk cache checks only the file of the function it loads. A kernel of
``experiments/network_shift.py`` is stored with the code of ``nn/chain.py`` that it
calls compiled in, so after a change to ``chain.py`` (a ``git pull``, a branch
switch) Numba would still load the old compiled code and print other numbers for
the same seed. Here the cache lives in ``__pycache__/numba-<digest>`` of this
package (or of ``NUMBA_CACHE_DIR`` when it is set), the digest being a hash of
every module that holds kernels: any change to one of them starts an empty
cache, and the folders of other digests are removed.

Numba itself, when the folder it is given cannot be written, falls back to
``__pycache__`` beside each source file or to a per-user folder, and those check
only the function's own file: stale numbers, silently. So the folder is checked
here first; when it cannot be written the cache moves to a per-user folder of the
same digest (``$XDG_CACHE_HOME`` or ``~/.cache``, ``dropout-bn-simulator/``), and
when no folder can be written the kernels are compiled without a cache, with a
note on stderr. Numba is told to use the chosen folder only
(``NUMBA_CACHE_LOCATOR_CLASSES``): it never falls back on its own.
"""
import hashlib
import os
import re
import shutil
import sys
import tempfile

import numba

from . import jit

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


USER_FOLDER = "dropout-bn-simulator"
NO_CACHE = ("note: no writable folder for compiled kernels ({tried}); running without a cache (each run "
            "compiles again: set NUMBA_CACHE_DIR to a writable folder)")


def writable(folder):
    """Whether ``folder`` exists or can be made, and a file can be created in it (Numba's own test)."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def user_base():
    """The per-user folder the cache moves to when its first choice cannot be written, or None (no home)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, USER_FOLDER) if os.path.isabs(root) else None


def _prune(base, keep):
    """Remove the cache folders of other digests under ``base`` (this program's own folder only)."""
    with_prefix = [n for n in os.listdir(base) if n.startswith(PREFIX)] if os.path.isdir(base) else []
    for name in with_prefix:
        if os.path.join(base, name) != keep:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def use_kernel_cache(note=None):
    """Point Numba's cache at the folder of the current digest (before any kernel is defined); return it.

    Returns None when no folder can be written: the kernels are then compiled without a cache, and
    ``note`` (default: a line on stderr) is called with the message.
    """
    own = not numba.config.CACHE_DIR
    first = os.path.join(PACKAGE, "__pycache__") if own else numba.config.CACHE_DIR
    tag = PREFIX + digest()
    tried = []
    for base, prune in ((first, own), (user_base(), True)):
        if base is None or base in tried:
            continue
        tried.append(base)
        folder = os.path.join(base, tag)
        if writable(folder):
            numba.config.CACHE_DIR = folder
            if hasattr(numba.config, "CACHE_LOCATOR_CLASSES"):
                numba.config.CACHE_LOCATOR_CLASSES = "UserProvidedCacheLocator"  # this folder, no fallback
            jit.OPTIONS["cache"] = True
            if prune:
                _prune(base, folder)
            return folder
    jit.OPTIONS["cache"] = False
    message = NO_CACHE.format(tried=", ".join(tried))
    (note or (lambda m: print(m, file=sys.stderr)))(message)
    return None
