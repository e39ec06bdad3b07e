"""The errors the library raises on purpose."""


class ParameterError(ValueError):
    """A value given by the user is invalid; the message says what is allowed."""


class SimulationError(RuntimeError):
    """A simulation produced a non-finite value; the message names where."""


def shown(value):
    """``value`` as text for a one-line message: quoted when it is not printable as it is."""
    text = str(value)
    return text if text.isprintable() and text.strip() == text and text else repr(text)
