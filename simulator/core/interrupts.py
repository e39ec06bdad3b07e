"""Ctrl-C and the processes the program starts.

A terminal's Ctrl-C reaches every process of the foreground group: the command, and the processes it
started (the first run's compile workers, the report's drawing process). Those are started with SIGINT
ignored, which stays so across ``exec`` from their first line, so that they never print a traceback of
their own; the command alone decides, and stops them.
"""
import contextlib
import signal


@contextlib.contextmanager
def sigint_ignored():
    """Ctrl-C ignored while the block runs, where this thread may set handlers (the main thread)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: processes started here inherit what the main thread set
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
