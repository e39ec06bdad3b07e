"""The noise kinds of simulator.nn.noise: kernels against naive references, variance factors by sampling,
the registry, and the PyTorch counterparts."""
import numpy as np
import pytest

from simulator.core.errors import ParameterError
from simulator.core.rng import block_state, keep_threshold, stream_key
from simulator.nn import layers, noise
from simulator.nn.noise import channel, dropout, gaussian, uout
from tests.conftest import assert_matches, require_torch
from tests.reference import Xoshiro, chain_uniform, channel_dropout_reference, gaussian_dropout_reference, mask_word

KEY = stream_key(20, "test-noise")


def state(block=0):
    return block_state(KEY, block)


def variance_and_mcse(x):
    """Sample variance of x and its Monte Carlo standard error ``√((m4 − v²)/n)``."""
    x = np.asarray(x, dtype=float).ravel()
    d = x - x.mean()
    v = float(np.mean(d * d))
    return v, float(np.sqrt(max(np.mean(d ** 4) - v * v, 0.0) / x.size))


def test_the_noise_kernels_have_one_home():
    """Dropout and Uout are defined in their own modules only: the layers module no longer carries them."""
    assert not hasattr(layers, "_dropout") and not hasattr(layers, "_uout")
    assert dropout.dropout.py_func.__module__ == "simulator.nn.noise.dropout"
    assert uout.uout.py_func.__module__ == "simulator.nn.noise.uout"


@pytest.mark.parametrize("p", [0.5, 0.3, 1.0])
def test_dropout_kernels_draw_the_same_gates(p):
    """The array-state, in-place and multiplier forms: the same numbers as the naive reference."""
    x = np.random.default_rng(1).normal(size=(7, 70))
    out = np.empty_like(x)
    dropout.dropout(state(), x, keep_threshold(p), 1.0 / p, out)
    g = Xoshiro(KEY, 0)
    ref = np.array([[x[i, k] * g.keep(p) * (1.0 / p) for k in range(70)] for i in range(7)])
    np.testing.assert_array_equal(out, ref)
    h = x.copy()
    dropout.dropout_inplace(state(), h, keep_threshold(p), 1.0 / p)
    np.testing.assert_array_equal(h, ref)
    nm = np.full((9, 70), -1.0)
    dropout.dropout_multipliers(state(), nm, 5, keep_threshold(p), 1.0 / p)
    g = Xoshiro(KEY, 0)
    for i in range(5):
        words = [mask_word(g, keep_threshold(p)) for _ in range(2)]
        want = [(1.0 / p) if (words[k // 64] >> (k % 64)) & 1 else 0.0 for k in range(70)]
        np.testing.assert_array_equal(nm[i], want)
    assert (nm[5:] == -1.0).all()  # rows beyond m untouched


def test_uout_kernels_draw_the_same_uniforms():
    beta = 0.3
    x = np.random.default_rng(2).normal(size=(6, 9))
    out = np.empty_like(x)
    uout.uout(state(), x, beta, out)
    g = Xoshiro(KEY, 0)
    ref = np.array([[x[i, k] + x[i, k] * (beta * (2.0 * chain_uniform(g) - 1.0)) for k in range(9)]
                    for i in range(6)])
    np.testing.assert_array_equal(out, ref)
    h = x.copy()
    uout.uout_inplace(state(), h, beta)
    np.testing.assert_array_equal(h, ref)
    nm = np.empty((6, 9))
    uout.uout_multipliers(state(), nm, 6, beta)
    g = Xoshiro(KEY, 0)
    np.testing.assert_array_equal(nm, [[1.0 + beta * (2.0 * chain_uniform(g) - 1.0) for _ in range(9)]
                                       for _ in range(6)])


@pytest.mark.parametrize("p", [0.5, 0.8])
def test_gaussian_matches_its_naive_reference(p):
    x = np.random.default_rng(3).normal(size=(5, 11))
    out = np.empty_like(x)
    gaussian.gaussian(state(4), x, gaussian.sigma(p), out)
    np.testing.assert_array_equal(out, gaussian_dropout_reference(KEY, 4, x, p))
    nm = np.empty((5, 11))
    gaussian.gaussian_multipliers(state(4), nm, 5, gaussian.sigma(p))
    np.testing.assert_array_equal(x * nm, out)


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_channel_dropout_matches_its_naive_reference(p):
    x = np.random.default_rng(4).normal(size=(6, 5, 4))
    out = np.empty_like(x)
    channel.channel_dropout(state(5), x, keep_threshold(p), 1.0 / p, out)
    np.testing.assert_array_equal(out, channel_dropout_reference(KEY, 5, x, p))
    # one gate per (sample, channel): every position of a channel is kept or dropped together
    kept = out != 0.0
    assert (kept == kept[:, :, :1]).all() and kept.any() and not kept.all()


def test_channel_dropout_of_one_position_is_element_dropout():
    x = np.random.default_rng(5).normal(size=(8, 6))
    a, b = np.empty((8, 6, 1)), np.empty_like(x)
    channel.channel_dropout(state(), x[:, :, None].copy(), keep_threshold(0.4), 1 / 0.4, a)
    dropout.dropout(state(), x, keep_threshold(0.4), 1 / 0.4, b)
    np.testing.assert_array_equal(a[:, :, 0], b)


def _multipliers(kind, value, n):
    """n draws of kind's multiplier ξ (on an input of ones)."""
    ones = np.ones((n // 100, 100))
    out = np.empty_like(ones)
    if kind == "dropout":
        dropout.dropout(state(7), ones, keep_threshold(value), 1.0 / value, out)
    elif kind == "uout":
        uout.uout(state(7), ones, value, out)
    elif kind == "gaussian":
        gaussian.gaussian(state(7), ones, gaussian.sigma(value), out)
    else:
        out3 = np.empty((n // 100, 100, 3))
        channel.channel_dropout(state(7), np.ones_like(out3), keep_threshold(value), 1.0 / value, out3)
        assert (out3 == out3[:, :, :1]).all()
        out = out3[:, :, 0]
    return out


@pytest.mark.parametrize("kind, value", [("dropout", 0.5), ("dropout", 0.8), ("uout", 0.4), ("gaussian", 0.5),
                                         ("gaussian", 0.9), ("channel-dropout", 0.7)])
def test_variance_factor_matches_sampling(kind, value):
    xi = _multipliers(kind, value, 200_000)
    v, mcse = variance_and_mcse(xi)
    assert_matches(v, mcse, noise.variance(kind, value))
    mean_mcse = xi.std() / np.sqrt(xi.size)
    assert_matches(xi.mean(), mean_mcse, 1.0)  # mean one


def test_a_wrong_variance_factor_is_caught(refuted):
    """The sampling check has power: dropout's p(1 − p) (the Bernoulli variance, not δ/p's) is refuted."""
    v, mcse = variance_and_mcse(_multipliers("dropout", 0.8, 200_000))
    assert refuted(0.8 * 0.2, v, mcse)
    assert not refuted(noise.variance("dropout", 0.8), v, mcse)
    with pytest.raises(AssertionError):
        assert_matches(v, mcse, 0.8 * 0.2)


def test_registry_names_codes_and_lookup():
    assert list(noise.KINDS) == ["dropout", "uout", "gaussian", "channel-dropout"]
    codes = [k.code for k in noise.KINDS.values()]
    assert len(set(codes)) == len(codes) and noise.NONE not in codes
    assert (dropout.CODE, uout.CODE) == (1, 2)  # the codes the chain and the trainer branch on
    for module in (dropout, uout, gaussian, channel):
        assert noise.KINDS[module.NAME] is module.KIND and noise.BY_CODE[module.CODE] is module.KIND
    assert noise.variance("dropout", 0.25) == 3.0
    assert noise.variance("uout", 0.3) == 0.3 * 0.3 / 3.0
    assert noise.variance("gaussian", 0.25) == noise.variance("dropout", 0.25)
    assert noise.get("channel-dropout").gate == "channel" and noise.get("dropout").gate == "element"
    with pytest.raises(ParameterError, match="unknown noise"):
        noise.get("alpha")


def test_torch_counterparts():
    torch = require_torch()
    d = noise.get("dropout").torch(0.8)
    assert isinstance(d, torch.nn.Dropout) and d.p == pytest.approx(0.2)
    c = noise.get("channel-dropout").torch(0.8)
    assert isinstance(c, torch.nn.Dropout1d) and c.p == pytest.approx(0.2)
    torch.manual_seed(0)
    for name, value in (("gaussian", 0.5), ("uout", 0.4)):
        module = noise.get(name).torch(value)
        x = torch.ones(2000, 100, dtype=torch.float64)
        xi = module.train()(x).numpy()
        v, mcse = variance_and_mcse(xi)
        assert_matches(v, mcse, noise.variance(name, value))
        assert torch.equal(module.eval()(x), x)  # no noise in eval mode
