"""Checkpoints: the finished pieces of a long run, so that a rerun resumes where it stopped.

A checkpoint is a text file of lines ``<sha256> <json>``, the checksum being that of
the JSON text that follows it. The first line is a header saying what the file
belongs to (the command, its settings, the seed, the code version, see
:func:`code_version`, and the versions of Python, numpy, Numba and SciPy); every other line is one finished piece,
``{"key": ..., "value": ...}``, appended as the piece finishes. Values go through
JSON on the way in as well, so a piece looks the same whether it was just computed
or read back.

A checkpoint is never half-used. On resume:

- a last line cut short (an interrupted append) is dropped, and the file is cut back before the next append;
- a header for another run (other settings, seed or code), a checksum that does not match, or a line that
  is not JSON: the whole file is discarded with a :class:`~simulator.core.errors.CheckpointNotice` warning,
  and the run starts afresh;
- a path that is not this program's checkpoint at all (a folder, text without our header, invalid UTF-8 in
  the header) is refused with :class:`~simulator.core.errors.ParameterError`: it may be someone's file.
"""
import functools
import hashlib
import json
import os
import warnings

from ..core.errors import CheckpointNotice, OutputError, ParameterError, shown

PROGRAM = "dropout-bn-simulator"
FORMAT = 2


def key(**what):
    """A canonical text key for a piece of work."""
    return json.dumps(what, sort_keys=True, default=str)


@functools.lru_cache(maxsize=None)
def code_version():
    """The package version and a hash of every module of the package: results are only reused by the
    code that made them."""
    from ..core.version import __version__

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the whole simulator package
    h = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                h.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0" + f.read() + b"\0")
    return f"{__version__}+{h.hexdigest()[:16]}"


def identity():
    """What decides whether results may be reused here: :func:`code_version` and the library versions.

    A Dask worker reports its own (:func:`simulator.runs.cluster.check_workers`)."""
    return {"code": code_version(), **_libraries()}


def _libraries():
    """The versions that can change a number: Python, numpy, Numba, SciPy."""
    import platform

    import numba
    import numpy
    import scipy

    return {"python": platform.python_version(), "numpy": numpy.__version__, "numba": numba.__version__,
            "scipy": scipy.__version__}


def _line(obj):
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest() + " " + text + "\n"


def _parse(raw):
    """The object of one line, or None when it is damaged (not UTF-8, no checksum, checksum or JSON wrong)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    digest, _, body = text.rstrip("\n").partition(" ")
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != digest:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _differences(a, b):
    names = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{n} {b.get(n)!r} in the file, {a.get(n)!r} now" for n in names[:3]) or "another run"


class Checkpoint:
    """Finished pieces, kept in memory and, when ``path`` is given, in a checkpoint file.

    Parameters
    ----------
    path : str, optional
        The file; without it the pieces are kept in memory only.
    belongs_to : dict, optional
        What the pieces belong to (command, settings, seed); the code version is added. A file whose
        header says otherwise is discarded.
    """

    def __init__(self, path=None, belongs_to=None):
        self.path = path
        self.belongs_to = {**(belongs_to or {}), "code": code_version(), "libraries": _libraries()}
        self.done = {}
        self._valid = 0  # bytes of the file that hold whole, checked lines; None: the file must be started anew
        if path:
            self._load()

    def _load(self):
        if not os.path.lexists(self.path):
            self._valid = None
            return
        label = f"checkpoint {shown(self.path)}"
        if not os.path.isfile(self.path):
            raise ParameterError(f"{label}: exists and is not a checkpoint file; move it away to run")
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ParameterError(f"{label}: cannot be read ({e.strerror or e})") from None
        lines = data.split(b"\n")
        if not data:
            self._valid = None
            return
        if len(lines) == 1 and _parse(lines[0]) is not None:  # the header's own write was cut before its newline
            self._valid = None
            return
        header = _parse(lines[0])
        if not isinstance(header, dict) or header.get("checkpoint") != PROGRAM:
            raise ParameterError(f"{label}: not a checkpoint of this program (or its header is damaged); "
                                 "move it away or delete it to run")
        if header.get("format") != FORMAT or header.get("belongs_to") != self.belongs_to:
            changed = _differences(self.belongs_to, header.get("belongs_to") or {})
            return self._discard(f"it belongs to another run ({changed})")
        done, offset = {}, len(lines[0]) + 1
        whole = lines[1:-1]  # the text after the last newline is an interrupted append (or nothing)
        for number, raw in enumerate(whole, start=2):
            entry = _parse(raw)
            if not isinstance(entry, dict) or set(entry) != {"key", "value"} or not isinstance(entry["key"], str):
                return self._discard(f"line {number} is damaged (its checksum or its form does not match)")
            done[entry["key"]] = entry["value"]
            offset += len(raw) + 1
        self.done, self._valid = done, offset

    def _discard(self, why):
        warnings.warn(f"checkpoint {self.path}: {why}; discarded, starting afresh", CheckpointNotice, stacklevel=3)
        self.done, self._valid = {}, None

    def __contains__(self, k):
        return k in self.done

    def __getitem__(self, k):
        return self.done[k]

    def __len__(self):
        return len(self.done)

    def save(self, k, value):
        """Keep ``value`` under ``k``; returns it as read back from JSON."""
        entry = {"key": k, "value": value}
        line = _line(entry)
        self.done[k] = json.loads(line.partition(" ")[2])["value"]
        if self.path:
            self._append(line)
        return self.done[k]

    def _append(self, line):
        start, fresh = self._valid, self._valid is None
        try:
            if fresh:
                with open(self.path, "w", encoding="utf-8") as f:
                    f.write(_line({"checkpoint": PROGRAM, "format": FORMAT, "belongs_to": self.belongs_to}))
                start = os.path.getsize(self.path)
            with open(self.path, "r+b") as f:
                f.truncate(start)
                f.seek(start)
                f.write(line.encode("utf-8"))
            self._valid = start + len(line.encode("utf-8"))
        except OSError as e:
            self._cut_back(None if fresh else start)
            raise OutputError(f"cannot write checkpoint {shown(self.path)}: {e.strerror or e}") from None

    def _cut_back(self, start):
        """After a failed append: the file as it was (or gone, if this append was to start it)."""
        try:
            if start is None:
                os.remove(self.path)
                self._valid = None
            else:
                os.truncate(self.path, start)
        except OSError:
            pass



def is_checkpoint(path):
    """Whether ``path`` is a file of this program's checkpoints (its header line says so)."""
    try:
        with open(path, "rb") as f:
            header = _parse(f.readline())
    except OSError:
        return False
    return isinstance(header, dict) and header.get("checkpoint") == PROGRAM


def remove(path):
    """Delete the checkpoint file ``path`` once the run's output is safely written; a file that is not
    this program's checkpoint is left alone."""
    if path and os.path.isfile(path) and is_checkpoint(path):
        os.remove(path)
