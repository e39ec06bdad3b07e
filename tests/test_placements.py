"""The one placement vocabulary (simulator.nn.placements) and the names the chain and the trainer derive from it."""
import numpy as np
import pytest

from simulator.core.errors import ParameterError
from simulator.nn import chain, placements
from simulator.nn.placements import CHAIN, TRAINER
from simulator.nn.train import config as train_config


def test_the_names_of_today_are_kept():
    """These strings are in check names, parameters and JSON outputs: they must not change."""
    assert placements.CHAIN_NAMES == ("none", "before-bn", "after-bn", "recalibrated", "uout")
    assert placements.TRAINER_NAMES == ("none", "hidden", "head", "recalibrated", "recalibrated-dropout-on", "uout")
    assert chain.PLACEMENTS == ("before-bn", "after-bn", "recalibrated", "uout")
    assert chain.CODES == {"none": 0, "before-bn": 1, "after-bn": 2, "recalibrated": 3, "uout": 4}
    assert (chain.NONE, chain.BEFORE, chain.AFTER, chain.RECAL, chain.UOUT) == (0, 1, 2, 3, 4)
    assert train_config.PLACEMENTS == placements.TRAINER_NAMES


def test_trainer_modes_and_variants_are_those_of_before():
    assert train_config.MODE_VARIANT == {
        "none": (0, 0), "hidden": (1, 0), "head": (2, 0), "recalibrated": (1, 1),
        "recalibrated-dropout-on": (1, 2), "uout": (3, 0)}
    assert (train_config.K_NONE, train_config.K_DROPOUT, train_config.K_UOUT) == (0, 1, 2)


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


def test_an_unknown_noise_code_raises_and_never_runs_another_kind():
    """The kernels' and the closed forms' last branch is an error, not Uout's or dropout's formula."""
    from simulator.core.rng import block_state, keep_threshold, stream_key
    from simulator.nn.train.kernels import noise_multipliers
    from simulator.theory import closed_forms as cf

    s = block_state(stream_key(1, "noise"), 0)
    nm = np.empty((4, 8))
    for code in (train_config.K_NONE, train_config.K_DROPOUT, train_config.K_UOUT):
        noise_multipliers(s, nm, 4, code, keep_threshold(0.5), 2.0, 0.1)  # the codes it runs
    with pytest.raises(ValueError, match="noise codes"):
        noise_multipliers(s, nm, 4, 7, keep_threshold(0.5), 2.0, 0.1)
    with pytest.raises(ValueError, match="noise codes"):
        chain.apply_noise(s, np.ones((4, 8)), 7, keep_threshold(0.5), 2.0, 0.1)
    assert cf.noise_variance("gaussian", 0.5) == cf.noise_variance("bernoulli", 0.5) == 1.0
    with pytest.raises(ValueError, match="unknown noise 'channel'"):
        cf.noise_variance("channel", 0.5)
