"""What the document claims: closed forms, claims and their outcome rule, verdicts of single checks,
and the SymPy derivations (``derive``). Imports only ``core``."""
