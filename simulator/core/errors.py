"""The errors the library raises on purpose."""


class ParameterError(ValueError):
    """A value given by the user is invalid; the message says what is allowed."""


class SimulationError(RuntimeError):
    """A simulation produced a non-finite value; the message names where."""


class OutputError(RuntimeError):
    """A file could not be written (a full disk, a read-only file system); the message names the file.

    What the program had started writing is removed before it is raised.
    """


class CheckpointNotice(UserWarning):
    """A checkpoint was found that belongs to another run, or is damaged: it is discarded, and the run
    starts afresh (a warning, so that a notebook shows it and the command line prints it in one line)."""


def shown(value):
    """``value`` as text for a one-line message: quoted when it is not printable as it is."""
    text = str(value)
    return text if text.isprintable() and text.strip() == text and text else repr(text)
