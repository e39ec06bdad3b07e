"""The one placement vocabulary (simulator.nn.placements) and the names the chain and the trainer derive from it."""
import pytest

from simulator.core.errors import ParameterError
from simulator.nn import chain, placements, train
from simulator.nn.placements import CHAIN, TRAINER


def test_the_names_of_today_are_kept():
    """These strings are in check names, parameters and JSON outputs: they must not change."""
    assert placements.CHAIN_NAMES == ("none", "before-bn", "after-bn", "recalibrated", "uout")
    assert placements.TRAINER_NAMES == ("none", "hidden", "head", "recalibrated", "recalibrated-dropout-on", "uout")
    assert chain.PLACEMENTS == ("before-bn", "after-bn", "recalibrated", "uout")
    assert chain.CODES == {"none": 0, "before-bn": 1, "after-bn": 2, "recalibrated": 3, "uout": 4}
    assert (chain.NONE, chain.BEFORE, chain.AFTER, chain.RECAL, chain.UOUT) == (0, 1, 2, 3, 4)
    assert train.PLACEMENTS == placements.TRAINER_NAMES


def test_trainer_modes_and_variants_are_those_of_before():
    assert train._MODE_VARIANT == {
        "none": (0, 0), "hidden": (1, 0), "head": (2, 0), "recalibrated": (1, 1),
        "recalibrated-dropout-on": (1, 2), "uout": (3, 0)}
    assert (train._K_NONE, train._K_DROPOUT, train._K_UOUT) == (0, 1, 2)


def test_twins_map_both_ways():
    pairs = {"none": "none", "before-bn": "hidden", "after-bn": "head", "recalibrated": "recalibrated",
             "uout": "uout"}
    for c, t in pairs.items():
        assert placements.twin(c, CHAIN) == t and placements.twin(t, TRAINER) == c
    assert placements.twin("recalibrated-dropout-on", TRAINER) == ""
    assert placements.canonical("hidden") == "before-bn" and placements.canonical("head") == "after-bn"
    assert placements.canonical("recalibrated-dropout-on") == "recalibrated-dropout-on"
    assert placements.canonical("before-bn") == "before-bn"


def test_dropout_before_a_bn():
    before = {p.name for p in placements.ALL if p.model == CHAIN and p.before_bn}
    assert before == {"before-bn", "recalibrated", "uout"}  # the chain's _layer_noise: noise on every Linear
    before = {p.name for p in placements.ALL if p.model == TRAINER and p.before_bn}
    assert before == {"hidden", "recalibrated", "recalibrated-dropout-on", "uout"}
    shifted = {p.name for p in placements.ALL if p.model == TRAINER and p.shifted}
    assert shifted == {"hidden", "recalibrated-dropout-on", "uout"}  # the trainer's s² ≠ 0


def test_every_noise_is_a_registered_kind():
    from simulator.nn import noise
    assert {p.noise for p in placements.ALL} - {""} <= set(noise.KINDS)


def test_unknown_names_are_refused():
    with pytest.raises(ParameterError, match="unknown placement hidden; valid: none, before-bn"):
        placements.get("hidden", CHAIN)
    with pytest.raises(ParameterError, match="unknown placement"):
        placements.canonical("sideways")
