"""Files the program writes: a user's path is never replaced or deleted, and nothing is left half-written.

Every ``--out``, ``--save`` and ``--plot`` of the command line goes through
:func:`open_output`, and ``report --out`` through :func:`check_folder` and
:func:`replace_folder`:

- A regular file (a new one, or the output file given again) is written to a temporary file in the same
  folder and renamed into place: a reader sees the old file or the new one, never half of one. It gets
  the permissions an ordinary ``open()`` would give it: an existing file keeps its mode, a new one gets
  ``0o666 & ~umask``.
- A symbolic link is followed: the file it points to is written, and the link stays.
- ``/dev/stdout``, ``/dev/stderr`` and ``/dev/fd/N`` are written through the descriptor this process
  inherited (so ``>> log`` still appends); a character device or a named pipe (a terminal, ``mkfifo``)
  is written in place: there is nothing to rename.
- Anything else that exists (a folder, a block device, a socket, a read-only file, a file with other hard
  links) is refused before any work, with one line (:class:`~simulator.core.errors.ParameterError`); the
  writer checks again itself, so a library call obeys the same rules.
- A failure while writing (a full disk, a read-only file system) removes the temporary file and raises
  :class:`~simulator.core.errors.OutputError`, naming the file.
- A folder replaces an existing path only when that path is an empty folder or a folder this program
  wrote, known by its marker file; a symbolic link, a file or anyone else's folder is refused.
"""
import contextlib
import os
import re
import shutil
import stat
import tempfile

from .errors import OutputError, ParameterError, shown

# Paths that name a descriptor this process inherited: written through that descriptor, never reopened
# (reopening would truncate a file that stdout appends to).
_DESCRIPTOR = re.compile(r"^/(?:dev/(?P<std>stdout|stderr)|dev/fd/(?P<fd>\d+)|proc/self/fd/(?P<pfd>\d+))$")


def _umask():
    """The process's umask, read without changing it (``/proc/self/status``), else by setting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _descriptor(path):
    """The inherited file descriptor ``path`` names (``/dev/stdout``, ``/dev/fd/N``), or None."""
    m = _DESCRIPTOR.match(str(path))
    if not m:
        return None
    return {"stdout": 1, "stderr": 2}[m["std"]] if m["std"] else int(m["fd"] or m["pfd"])


def _in_place(path):
    """Whether ``path`` is written where it is: an inherited descriptor, a character device or a pipe."""
    if _descriptor(path) is not None:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _probe(folder, what):
    """Fail with one line when no file can be created in ``folder``."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ParameterError(f"{what}: cannot write in {shown(folder)} ({e.strerror or e})") from None


def check_target(path, option="--out"):
    """Fail before any work, with one line, when ``path`` cannot be written as an output file.

    Parameters
    ----------
    path : str or None
        Nothing is checked when None.
    option : str
        The option the path was given to, for the message.
    """
    if path is None:
        return
    what = f"{option} {shown(path)}"
    if not str(path).strip():
        raise ParameterError(f"{option}: give a file name")
    try:
        _check(path, what)
    except OSError as e:  # a loop of symbolic links, a name too long, ...
        raise ParameterError(f"{what}: {e.strerror or e}") from None


def _check(path, what):
    fd = _descriptor(path)
    if fd is not None:
        try:
            os.fstat(fd)
        except OSError:
            raise ParameterError(f"{what}: this process has no such descriptor") from None
        return
    if os.path.isdir(path):
        raise ParameterError(f"{what}: is a folder; give a file name")
    if os.path.exists(path):
        mode = os.stat(path).st_mode
        if stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            raise ParameterError(f"{what}: is a block device or a socket; not written")
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            if not os.access(path, os.W_OK):
                raise ParameterError(f"{what}: not writable")
            return
    elif os.path.abspath(path).startswith(("/dev/", "/proc/")):
        raise ParameterError(f"{what}: no such device or file")
    real = os.path.realpath(path)
    if os.path.lexists(real):
        st = os.stat(real)
        if not stat.S_ISREG(st.st_mode):
            raise ParameterError(f"{what}: exists and is not a regular file, a device or a pipe; not replaced")
        if not st.st_mode & 0o222 or not os.access(real, os.W_OK):
            raise ParameterError(f"{what}: the file is read-only; not replaced")
        if st.st_nlink > 1:
            raise ParameterError(f"{what}: the file has other hard links, which a new file would break; "
                                 "not replaced")
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise ParameterError(f"{what}: folder {shown(folder)} does not exist")
    _probe(folder, what)


@contextlib.contextmanager
def open_output(path, binary=False, option="--out"):
    """A file object that becomes ``path`` when the block ends without an error (see the module's rules).

    Raises
    ------
    ParameterError
        When ``path`` may not be written (:func:`check_target`), before anything is written.
    OutputError
        When writing fails (no space left, a read-only file system, ...): the temporary file is removed.
    """
    check_target(path, option)
    mode = "wb" if binary else "w"
    text = {} if binary else {"encoding": "utf-8", "newline": ""}
    if _in_place(path):
        fd = _descriptor(path)
        try:
            with (os.fdopen(os.dup(fd), mode, **text) if fd is not None else open(path, mode, **text)) as f:
                yield f
        except OSError as e:
            raise OutputError(f"cannot write {shown(path)}: {e.strerror or e}") from None
        return
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    try:
        keep = stat.S_IMODE(os.stat(real).st_mode) if os.path.exists(real) else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(real) + ".", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"cannot write {shown(path)}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, mode, **text) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), keep)
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, real)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {shown(path)}: {e.strerror or e}") from None
        raise


def write_text(path, text):
    """Write ``text`` to ``path`` by the module's rules."""
    with open_output(path) as f:
        f.write(text)


def write_bytes(path, data):
    """Write ``data`` to ``path`` by the module's rules."""
    with open_output(path, binary=True) as f:
        f.write(data)


def check_folder(path, owned, option="--out", what="a folder this program wrote"):
    """Fail before any work when the folder ``path`` may not be (re)placed.

    Parameters
    ----------
    path : str
    owned : callable
        ``owned(folder) -> bool``: whether an existing folder was written by this program (its marker).
    option, what : str
        For the message.
    """
    label = f"{option} {shown(path)}"
    if os.path.islink(path):
        raise ParameterError(f"{label}: is a symbolic link; give the folder itself (it would be replaced)")
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ParameterError(f"{label}: exists and is not a folder; not replaced")
        if os.listdir(path) and not owned(path):
            raise ParameterError(f"{label}: holds files that are not {what}; not replaced "
                                 "(give a new or empty folder)")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise ParameterError(f"{label}: cannot create {shown(parent)} ({e.strerror or e})") from None
    _probe(parent, label)


def new_folder(path):
    """A new, empty, hidden temporary folder beside ``path`` (permissions by the umask), to become it."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        tmp = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(os.path.abspath(path)) + ".", suffix=".tmp")
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        raise OutputError(f"cannot write {shown(path)}: {e.strerror or e}") from None
    return tmp


def replace_folder(tmp, path, owned):
    """Put the finished folder ``tmp`` in place of ``path``, which must be absent, empty or ``owned``.

    The old folder is renamed aside first and removed only after the new one is in place.
    """
    path = os.path.abspath(path)
    old = None
    if os.path.isdir(path) and not os.path.islink(path):
        if os.listdir(path) and not owned(path):
            raise ParameterError(f"--out {shown(path)}: holds files that are not this program's; not replaced")
        old = tempfile.mkdtemp(dir=os.path.dirname(path), prefix="." + os.path.basename(path) + ".", suffix=".old")
        try:
            os.rename(path, os.path.join(old, "previous"))
        except OSError:
            os.rmdir(old)
            raise
    elif os.path.lexists(path):
        raise ParameterError(f"--out {shown(path)}: exists and is not a folder; not replaced")
    try:
        os.rename(tmp, path)
    except OSError:
        if old is not None:
            os.rename(os.path.join(old, "previous"), path)
            os.rmdir(old)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_folder(tmp):
    """Remove a folder this program made (a temporary folder), quietly."""
    if tmp and os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
