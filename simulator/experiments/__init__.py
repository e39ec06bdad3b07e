"""The experiments, in the order they are run and listed."""
from . import dropout_gradient, inverted_dropout
from . import relu_shift
from . import batchnorm
from . import variance_shift
from . import network_shift, task_impact
from . import training

CATALOG = {e.name: e for e in (
    dropout_gradient.EXPERIMENT,
    inverted_dropout.EXPERIMENT,
    relu_shift.EXPERIMENT,
    batchnorm.EXPERIMENT,
    variance_shift.EXPERIMENT,
    network_shift.EXPERIMENT,
    task_impact.EXPERIMENT,
    training.EXPERIMENT,
)}
