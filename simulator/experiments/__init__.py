"""The experiments, in the order they are run and listed."""
from . import (
    batchnorm,
    dropout_gradient,
    inverted_dropout,
    network_shift,
    regime_map,
    relu_shift,
    task_impact,
    training,
    variance_shift,
)

CATALOG = {e.name: e for e in (
    dropout_gradient.EXPERIMENT,
    inverted_dropout.EXPERIMENT,
    relu_shift.EXPERIMENT,
    batchnorm.EXPERIMENT,
    variance_shift.EXPERIMENT,
    network_shift.EXPERIMENT,
    task_impact.EXPERIMENT,
    training.EXPERIMENT,
    regime_map.EXPERIMENT,
)}
