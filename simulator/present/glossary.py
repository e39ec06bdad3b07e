"""The glossary of the report's page: every term the page uses, defined once, as data.

:data:`GLOSSARY` holds the entries in the order the page shows them, each an :class:`Entry`
(its section, the term, the anchor ``g-ANCHOR`` the page links to, the definition);
:data:`TERMS` the words of the page that name an entry. An entry for a check kind, a verdict
or an outcome has the anchor ``kind-``, ``verdict-`` or ``outcome-`` and the :func:`slug` of
its name. The page itself is :mod:`simulator.present.page`.
"""
from typing import NamedTuple


class Entry(NamedTuple):
    """One term of the glossary."""

    section: str
    term: str
    anchor: str
    text: str


def slug(text):
    """The anchor form of a name: lower case, every character but a letter or a digit made a hyphen."""
    return "".join(ch if ch.isalnum() else "-" for ch in str(text).lower()).strip("-").replace("--", "-")


# Every term the page uses, defined once: Entry(section, term, anchor, definition).
GLOSSARY = tuple(Entry(*e) for e in (
    ("Numbers", "p", "p", "the KEEP probability of dropout, as in the document: a unit is kept with probability p "
     "and dropped with probability 1 − p. PyTorch's nn.Dropout takes the DROP probability, so p = 0.8 here is "
     "nn.Dropout(0.2)."),
    ("Numbers", "MCSE", "mcse", "Monte Carlo standard error: how much an estimate from random samples would vary "
     "if the run were repeated with another seed (a standard deviation of the estimate). ±2 MCSE bars cover the "
     "truth about 95% of the time."),
    ("Numbers", "z", "z", "(estimate − closed form) / MCSE: how many standard errors the estimate is from what the "
     "formula predicts. For an approximation: the excess of the error over its tolerance, in MCSE."),
    ("Numbers", "z*", "zstar", "the threshold |z| must exceed for a check to fail, set so that over all z-tests "
     "together a false alarm has probability at most the family-wise α (Bonferroni)."),
    ("Numbers", "family-wise α", "alpha", "the chance, over the whole run, that at least one correct formula is "
     "wrongly reported as refuted."),
    ("Numbers", "resolution", "resolution", "the smallest deviation from the formula a check would detect 90% of "
     "the time, about (z* + 1.3) × MCSE: below it, a wrong formula could pass unnoticed."),
    ("Numbers", "Δ", "delta", "the variance shift Var_test / Var_train of a unit before BatchNorm: 1 means no "
     "shift; below 1, BN sees less variance at test time than it learned in training."),
    ("Numbers", "Var_train / Var_test", "var-train", "the variance of a unit with dropout on (training mode) and "
     "with dropout off (evaluation mode)."),
    ("Numbers", "running_var", "running-var", "BatchNorm's running estimate of the variance, updated at each "
     "training batch (PyTorch: momentum 0.1, unbiased) and used instead of the batch variance in eval mode."),
    ("Numbers", "E_N, E_D", "en-ed", "C1: the squared error of the weight-scaled network (weights p·w, no dropout) "
     "and of the network with dropout; I_i is the i-th input, w_i its weight."),
    ("Check kinds", "exact", "kind-exact", "a formula that should hold exactly, tested by z against the sampled "
     "estimate."),
    ("Check kinds", "enumeration", "kind-enumeration", "the same formula computed by summing over every possible "
     "dropout mask (no sampling noise): must agree to about 10⁻⁹."),
    ("Check kinds", "inequality", "kind-inequality", "a sign the theory guarantees (e.g. the ReLU shift ≥ 0, "
     "Jensen): fails only if significantly violated."),
    ("Check kinds", "approximation", "kind-approximation", "a formula that is only approximately right, tested "
     "within a stated relative tolerance."),
    ("Check kinds", "measurement", "kind-measurement", "a quantity measured with its MCSE but not tested against "
     "any claim (any reference value is shown for comparison only)."),
    ("Check kinds", "erratum", "kind-erratum", "the document's own formula, exactly as written, where the project "
     "holds it to be wrong: the check passes when the formula is refuted."),
    ("Check kinds", "effect", "kind-effect", "a signed, paired difference the document claims (e.g. test MSE with "
     "dropout minus without, positive = dropout hurts)."),
    ("Check kinds", "equivalence", "kind-equivalence", "a claim that an effect stays below a margin (e.g. accuracy "
     "drops by less than 0.01)."),
    ("Check kinds", "derivation", "kind-derivation", "one line of the document's derivation, checked symbolically "
     "(SymPy): proven equal to the line before, or false with the residual."),
    ("Verdicts (one check)", "confirmed", "verdict-confirmed", "the estimate agrees with the formula (|z| ≤ z*, or "
     "within the tolerance of an approximation)."),
    ("Verdicts (one check)", "refuted", "verdict-refuted", "the estimate disagrees with the formula by more than z* "
     "MCSE. For an erratum this is the expected outcome."),
    ("Verdicts (one check)", "inconclusive", "verdict-inconclusive", "the run could not tell: more samples needed "
     "(e.g. an erratum within the resolution of the truth)."),
    ("Verdicts (one check)", "measured", "verdict-measured", "a measurement: reported, not judged."),
    ("Verdicts (one check)", "holds", "verdict-holds", "an effect significantly in the claimed direction, or an "
     "equivalence significantly within its margin."),
    ("Verdicts (one check)", "contradicted", "verdict-contradicted", "an effect significantly in the opposite "
     "direction, or an equivalence margin significantly exceeded."),
    ("Verdicts (one check)", "no detectable effect", "verdict-no-detectable-effect", "an effect smaller than the "
     "check's resolution: not significant even as a test alone."),
    ("Verdicts (one check)", "undecided", "verdict-undecided", "an equivalence or derivation step the run could "
     "not decide, or an effect significant as a test alone but not after the correction for its sub-claim's "
     "family of findings."),
    ("Verdicts (one check)", "proven", "verdict-proven", "a derivation line proven equal to the previous one."),
    ("Verdicts (one check)", "false", "verdict-false", "a derivation line that does not follow; the residual is "
     "what is left of (this line − the previous one)."),
    ("Outcomes (one claim)", "confirmed", "outcome-confirmed", "every check that tests the claim supports it."),
    ("Outcomes (one claim)", "confirmed, with an erratum", "outcome-confirmed-with-an-erratum", "the claim holds, "
     "but a formula or line of the document is wrong as written (named in red)."),
    ("Outcomes (one claim)", "approximately", "outcome-approximately", "supported, with an approximation carrying "
     "part of it (within its stated tolerance)."),
    ("Outcomes (one claim)", "depends", "outcome-depends", "true in some settings and not in others (named)."),
    ("Outcomes (one claim)", "contradicted", "outcome-contradicted", "the checks go against the claim."),
    ("Outcomes (one claim)", "inconclusive", "outcome-inconclusive", "the checks could not decide at this budget."),
    ("Outcomes (one claim)", "measured", "outcome-measured", "only measurements, no test of the claim."),
    ("Networks", "L1 … L8", "layer", "the BatchNorm layers of a chain, counted from the input: L3 is the third "
     "Linear → BN → ReLU block."),
    ("Networks", "ratio/none", "ratio-none", "a BN layer's ratio eval variance / running_var in a network with "
     "dropout, divided by the same ratio in the same network without dropout (paired): 1 = dropout adds no shift."),
    ("Networks", "Li max", "li-max", "Li et al.'s (2019) measure of the shift of a BN layer: max(r, 1/r), r = eval "
     "variance / running_var, averaged over units; 1 = no shift."),
    ("Networks", "uout", "uout", "Uout noise (Li et al. 2019): multiply by 1 + r, r uniform in (−β, β), β = 0.1, "
     "instead of dropout: a much smaller variance shift."),
    ("Networks", "before-bn", "before-bn", "dropout placed before every BatchNorm (the harmful placement)."),
    ("Networks", "after-bn", "after-bn", "dropout only after the last BatchNorm, before the head: no BN sees "
     "dropout noise."),
    ("Networks", "recalibrated", "recalibrated", "dropout before BN during training, then BN's running statistics "
     "re-estimated in one pass with dropout off (Hendrycks & Gimpel)."),
    ("Networks", "hidden", "hidden", "trained networks: dropout after each hidden layer (before the next BN)."),
    ("Networks", "head", "head", "trained networks: dropout only before the output layer (after every BN)."),
    ("Networks", "recalibrated-dropout-on", "recalibrated-dropout-on", "trained networks: like recalibrated, but "
     "the re-estimation pass keeps dropout on (a control: it should not help)."),
    ("Networks", "none", "none", "the same network without dropout, the paired baseline."),
))
# Words of the page that name a glossary entry: word → anchor (for the check of the glossary).
TERMS = {"MCSE": "mcse", "z*": "zstar", "resolution": "resolution", "family-wise α": "alpha", "Δ": "delta",
         "running_var": "running-var", "Var_train": "var-train", "Var_test": "var-train",
         "ratio/none": "ratio-none", "Li max": "li-max", "uout": "uout", "before-bn": "before-bn",
         "after-bn": "after-bn", "recalibrated": "recalibrated", "recalibrated-dropout-on": "recalibrated-dropout-on",
         "L1": "layer", "L8": "layer", "E_N": "en-ed"}
