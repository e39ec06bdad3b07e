"""The bottom layer: random streams, statistics, the block engine, Numba options, files and errors.

Nothing here imports from any other layer of the package.
"""
