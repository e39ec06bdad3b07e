"""The training tasks: scikit-learn's bundled data sets and the synthetic teacher. Imports only ``core``."""
