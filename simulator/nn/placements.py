"""Where the noise goes: the one placement vocabulary of the chain, the trainer, the experiments and the report.

Two models use placements, each with its own names (they are in check names, parameters and
outputs, so they stay as they are); :data:`ALL` defines every name once and :func:`twin` maps one
model's name onto the other's:

=====================  ============================  ===================================================
chain (C5, C6)         trainer                       meaning
=====================  ============================  ===================================================
``none``               ``none``                      no noise anywhere (the reference network)
``before-bn``          ``hidden``                    noise on the input of every Linear after the first
                                                     (the chain: of every Linear): it reaches a BN in
                                                     training, the harmful order of Li et al. 2019
``after-bn``           ``head``                      one dropout after the last hidden block, before the
                                                     head: no BN downstream
``recalibrated``       ``recalibrated``              trained as ``before-bn`` / ``hidden``, then the BN
                                                     running statistics re-estimated with dropout off
—                      ``recalibrated-dropout-on``   the same re-estimation with dropout on
                                                     (``torch.optim.swa_utils.update_bn``)
``uout``               ``uout``                      as ``before-bn`` / ``hidden`` with Uout noise
=====================  ============================  ===================================================

The noise kinds are those of :mod:`simulator.nn.noise`.
"""
from typing import NamedTuple

from ..core.errors import ParameterError, shown

CHAIN, TRAINER = "chain", "trainer"
HIDDEN, HEAD = "hidden", "head"          # positions: every hidden block, or only before the head
OFF, ON = "dropout-off", "dropout-on"    # recalibration passes


class Placement(NamedTuple):
    """One placement name of one model.

    Attributes
    ----------
    name : str
        The name in outputs (``"before-bn"``, ``"hidden"``, ...).
    model : str
        :data:`CHAIN` or :data:`TRAINER`; ``"none"`` and shared names are defined for each model.
    noise : str
        The noise kind (a name of ``noise.KINDS``), ``""`` for none.
    position : str
        :data:`HIDDEN` (every hidden position, so a BN sees the noise), :data:`HEAD` or ``""``.
    recalibration : str
        ``""``, :data:`OFF` or :data:`ON`: the BN statistics re-estimated after training, noise off or on.
    twin : str
        The same placement's name in the other model (``""``: it has none).
    meaning : str
    """

    name: str
    model: str
    noise: str
    position: str
    recalibration: str
    twin: str
    meaning: str

    @property
    def before_bn(self):
        """Training puts noise before a BN (Li et al.'s harmful order), whatever is done afterwards."""
        return self.position == HIDDEN

    @property
    def shifted(self):
        """The BN running statistics, as evaluated, were last accumulated with noise before the BN."""
        return self.before_bn and self.recalibration != OFF


_NONE = "no noise anywhere (the reference network)"
_HIDDEN = "noise on every hidden position, before the next BN (the harmful order of Li et al. 2019)"
_HEAD = "one dropout after the last hidden block, before the head"
_RECAL = "trained with dropout before every BN; BN running statistics re-estimated with dropout off"
_RECAL_ON = "trained with dropout before every BN; BN running statistics re-estimated with dropout on"
_UOUT = "Uout noise h (1 + r), r ~ U(−β, β), at the hidden positions"

# (name, model, noise, position, recalibration, twin, meaning), in each model's order of today.
ALL = tuple(Placement(*row) for row in (
    ("none", CHAIN, "", "", "", "none", _NONE),
    ("before-bn", CHAIN, "dropout", HIDDEN, "", "hidden", _HIDDEN),
    ("after-bn", CHAIN, "dropout", HEAD, "", "head", _HEAD),
    ("recalibrated", CHAIN, "dropout", HIDDEN, OFF, "recalibrated", _RECAL),
    ("uout", CHAIN, "uout", HIDDEN, "", "uout", _UOUT),
    ("none", TRAINER, "", "", "", "none", _NONE),
    ("hidden", TRAINER, "dropout", HIDDEN, "", "before-bn", _HIDDEN),
    ("head", TRAINER, "dropout", HEAD, "", "after-bn", _HEAD),
    ("recalibrated", TRAINER, "dropout", HIDDEN, OFF, "recalibrated", _RECAL),
    ("recalibrated-dropout-on", TRAINER, "dropout", HIDDEN, ON, "", _RECAL_ON),
    ("uout", TRAINER, "uout", HIDDEN, "", "uout", _UOUT),
))
_BY = {(p.model, p.name): p for p in ALL}

CHAIN_NAMES = tuple(p.name for p in ALL if p.model == CHAIN)           # none first
TRAINER_NAMES = tuple(p.name for p in ALL if p.model == TRAINER)       # none first
CHAIN_NOISY = CHAIN_NAMES[1:]                                           # the chain's PLACEMENTS
NAMES = tuple(dict.fromkeys(CHAIN_NAMES + TRAINER_NAMES))              # every name once


def get(name, model):
    """The :class:`Placement` ``name`` of ``model``; ParameterError for an unknown one."""
    try:
        return _BY[(model, name)]
    except KeyError:
        valid = CHAIN_NAMES if model == CHAIN else TRAINER_NAMES
        raise ParameterError(f"unknown placement {shown(name)}; valid: {', '.join(valid)}") from None


def twin(name, model):
    """The other model's name for placement ``name`` of ``model`` (``""`` where it has none)."""
    return get(name, model).twin


def canonical(name):
    """One name per placement whichever model it comes from: the chain's where it has one.

    ``canonical("hidden") == "before-bn"``, ``canonical("recalibrated-dropout-on")`` is itself
    (for a table keyed by placement, such as a figure's colours).
    """
    for model in (CHAIN, TRAINER):
        if (model, name) in _BY:
            p = _BY[(model, name)]
            return p.twin if p.model == TRAINER and p.twin else p.name
    raise ParameterError(f"unknown placement {shown(name)}; valid: {', '.join(NAMES)}")
