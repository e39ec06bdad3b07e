"""The experiments, in the order they are run and listed."""
from . import dropout_gradient, inverted_dropout

CATALOG = {e.name: e for e in (
    dropout_gradient.EXPERIMENT,
    inverted_dropout.EXPERIMENT,
)}
