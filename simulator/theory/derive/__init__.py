"""Derivations of the document checked line by line.

Each derivation is data (:mod:`.chains`): a chain of SymPy steps with where they
stand in the document and the assumptions they use. The checker (:mod:`.checker`)
proves each step equal to the one before it under those assumptions, by an
expectation algebra over independent random symbols (:mod:`.algebra`), or reports
it false with the residual, and cross-checks at random numbers. :mod:`.text`
formats the results for the command line.
"""
from .chains import CHAINS
from .checker import ChainResult, StepResult, check, check_all, check_chain, derivation_checks
from .text import FORMATS, format_results

__all__ = ["CHAINS", "FORMATS", "ChainResult", "StepResult", "check", "check_all", "check_chain", "derivation_checks",
           "format_results"]
