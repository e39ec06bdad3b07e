"""Running experiments: ``simulate``, ``verify``, ``sweep`` (on threads or Dask), checkpoints, the
first-run warm-up and calibration. Imports the layers below (core, theory, data, nn, experiments)."""
