"""The errors the library raises on purpose."""


class ParameterError(ValueError):
    """A value given by the user is invalid; the message says what is allowed."""


class SimulationError(RuntimeError):
    """A simulation produced a non-finite value; the message names where."""
