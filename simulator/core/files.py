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
- A name is refused before any work when the longest name the program derives from it (its temporary
  file ``.NAME.PID-XXXXXXXX.tmp``, its checkpoint ``NAME.partial``, its lock ``NAME.lock``) would pass the
  file system's limit on a name's length.
- A temporary file or folder carries the id of the process that made it; one left by a run that was
  killed (SIGKILL, a power cut) is removed by the next run on the same output, once that process is
  gone. A temporary folder is recognised by its marker file, so no one else's file is ever removed.
- :func:`output_lock` takes an exclusive lock (an OS file lock on ``NAME.lock``) for a run that writes an
  output and its checkpoint; a second run on the same output is refused in one line naming the first.
"""
import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile

from .errors import OutputError, ParameterError, shown

# What the program adds to a name it is given: a temporary file or folder ``.NAME.PID-XXXXXXXX.tmp`` (a pid has
# at most 7 digits on Linux, mkstemp adds 8 characters), a checkpoint ``NAME.partial``, a lock ``NAME.lock``.
SUFFIX_BYTES = len("..") + 7 + len("-") + 8 + len(".tmp")
UNFINISHED = ".unfinished-by-dropout-bn-simulator"  # the marker of a temporary folder, holding its pid
_LEFTOVER = r"^\.{name}\.(?P<pid>\d+)-[A-Za-z0-9_]{{8}}\.(?:tmp|old)$"
LOCK_MARK = "dropout-bn-simulator lock"

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


def check_name(path, what):
    """Refuse ``path`` when a name the program derives from it would be too long for its file system."""
    name = os.path.basename(os.path.abspath(path))
    folder = os.path.dirname(os.path.abspath(path))
    try:
        limit = os.pathconf(folder if os.path.isdir(folder) else "/", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    size = len(os.fsencode(name))
    if size + SUFFIX_BYTES > limit:
        raise ParameterError(f"{what}: the name is {size} bytes long; the program adds up to {SUFFIX_BYTES} "
                             f"(its temporary and checkpoint files) and the file system allows {limit}: give a "
                             f"name of at most {limit - SUFFIX_BYTES} bytes")


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
    check_name(path, what)
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
        remove_leftovers(real)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(real), suffix=".tmp")
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
    if not str(path).strip():
        raise ParameterError(f"{option}: give a folder name")
    check_name(path, label)
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
    """A new, empty, hidden temporary folder beside ``path`` (permissions by the umask), to become it.

    It holds the marker :data:`UNFINISHED` (with this process's id) until :func:`replace_folder` puts it
    in place, so that the next run can recognise and remove it if this one is killed first.
    """
    parent = os.path.dirname(os.path.abspath(path))
    try:
        remove_leftovers(path)
        tmp = tempfile.mkdtemp(dir=parent, prefix=_temp_prefix(path), suffix=".tmp")
        _mark_unfinished(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        raise OutputError(f"cannot write {shown(path)}: {e.strerror or e}") from None
    return tmp


def _temp_prefix(path):
    """``.NAME.PID-``: the start of a temporary name beside ``path``, carrying this process's id."""
    return f".{os.path.basename(os.path.abspath(path))}.{os.getpid()}-"


def _mark_unfinished(folder):
    with open(os.path.join(folder, UNFINISHED), "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")


def _alive(pid):
    """Whether a process ``pid`` exists (one of another user's counts as alive; so does an odd pid 0)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_leftovers(path):
    """Remove what a killed run on ``path`` left beside it: its temporary files and marked folders.

    Only names of this program's pattern (``.NAME.PID-XXXXXXXX.tmp`` or ``.old``) whose process is gone
    are touched, and a folder only when it holds :data:`UNFINISHED` naming that process. An aside folder
    ``.old`` that holds the previous output while ``path`` itself is missing is put back first. Returns
    the names removed.
    """
    path = os.path.abspath(path)
    parent, name = os.path.dirname(path), os.path.basename(path)
    pattern = re.compile(_LEFTOVER.format(name=re.escape(name)))
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    removed = []
    for entry in names:
        m = pattern.match(entry)
        if not m or int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
            continue
        full = os.path.join(parent, entry)
        with contextlib.suppress(OSError):
            if os.path.islink(full):
                continue
            if os.path.isfile(full) and entry.endswith(".tmp"):
                os.unlink(full)
            elif os.path.isdir(full) and _marked_by(full, m["pid"]):
                previous = os.path.join(full, "previous")
                if entry.endswith(".old") and os.path.isdir(previous) and not os.path.lexists(path):
                    os.rename(previous, path)  # killed between the two renames: the old output goes back
                shutil.rmtree(full)
            else:
                continue
            removed.append(entry)
    return removed


def _marked_by(folder, pid):
    try:
        with open(os.path.join(folder, UNFINISHED), encoding="utf-8") as f:
            return f.read().strip() == str(pid)
    except (OSError, ValueError):
        return False


def replace_folder(tmp, path, owned):
    """Put the finished folder ``tmp`` in place of ``path``, which must be absent, empty or ``owned``.

    The old folder is renamed aside first and removed only after the new one is in place.
    """
    path = os.path.abspath(path)
    old = None
    if os.path.isdir(path) and not os.path.islink(path):
        if os.listdir(path) and not owned(path):
            raise ParameterError(f"--out {shown(path)}: holds files that are not this program's; not replaced")
        old = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=_temp_prefix(path), suffix=".old")
        try:
            _mark_unfinished(old)
            os.rename(path, os.path.join(old, "previous"))
        except OSError:
            shutil.rmtree(old, ignore_errors=True)
            raise
    elif os.path.lexists(path):
        raise ParameterError(f"--out {shown(path)}: exists and is not a folder; not replaced")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(tmp, UNFINISHED))
        os.rename(tmp, path)
    except OSError:
        if old is not None:
            os.rename(os.path.join(old, "previous"), path)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_folder(tmp):
    """Remove a folder this program made (a temporary folder), quietly."""
    if tmp and os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def output_lock(path, option="--out"):
    """Hold an exclusive lock on the output ``path`` (and so on its checkpoint) while the block runs.

    The lock is an OS file lock (``flock``) on ``path.lock``, a file holding :data:`LOCK_MARK` and this
    process's id; the OS releases it when the process ends, however it ends, so a lock file left by a
    killed run is simply taken over. The file is removed when the block ends.

    Raises
    ------
    ParameterError
        When another run holds the lock (the message names its process id), or ``path.lock`` exists and is
        not this program's lock file.
    """
    lock = os.path.abspath(path).rstrip(os.sep) + ".lock"
    label = f"{option} {shown(path)}"
    fd = _take_lock(lock, label)
    try:
        remove_leftovers(path)  # what a killed run on this output left, now that none can be running on it
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # removed while held: a run waiting on the old file sees it is gone and retries
        os.close(fd)


def _take_lock(lock, label):
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            fresh = True
        except FileExistsError:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # its run just ended and removed it
            except OSError as e:
                raise ParameterError(f"{label}: {shown(lock)} exists and cannot be opened as this program's lock "
                                     f"({e.strerror or e}); move it away to run") from None
            fresh = False
        except OSError as e:
            raise ParameterError(f"{label}: cannot create the lock {shown(lock)} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_lock(fd)
            os.close(fd)
            raise ParameterError(f"{label}: another run (process {holder or 'unknown'}) is writing this output; "
                                 "wait for it to end, or give another --out") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if not same:  # the file was removed (its run ended) between our open and our lock: take the new one
            os.close(fd)
            continue
        if not fresh and not _read_lock(fd):
            os.close(fd)
            raise ParameterError(f"{label}: {shown(lock)} exists and is not this program's lock file; move it "
                                 "away to run")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{LOCK_MARK}\npid {os.getpid()}\n".encode(), 0)
        return fd


def _read_lock(fd):
    """The process id a lock file of this program names, or None when it is not one (or empty)."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace")
    except OSError:
        return None
    lines = text.splitlines()
    if len(lines) >= 2 and lines[0] == LOCK_MARK and lines[1].startswith("pid "):
        return lines[1][4:].strip() or None
    return None
