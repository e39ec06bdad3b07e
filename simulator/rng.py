"""Random streams: xoshiro256** seeded per block.

Every piece of random work is cut into fixed blocks. A block's generator state
is derived from a 128-bit *stream key* and the block index, so a block draws the
same numbers whichever thread runs it and in whatever order. Stream keys come
from ``numpy.random.SeedSequence(seed, spawn_key=...)`` over the names of what
is simulated (experiment, stream, parameters), never from global state.

Notes
-----
xoshiro256** (Blackman & Vigna 2018) is seeded with four splitmix64 outputs of
``key0 ^ splitmix64(key1 + block)``, as its authors recommend. A Bernoulli(p)
gate compares the top 53 bits of a draw with ``round(p * 2**53)``, so the
effective keep probability differs from p by less than 2**-53 and p = 1 keeps
every unit. Normals use the Marsaglia polar method and come in pairs.
"""
import zlib

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = 9007199254740992.0


def stream_key(seed, *names):
    """Derive the 128-bit key of one random stream.

    Parameters
    ----------
    seed : int
        The user's seed (non-negative).
    *names : str
        What is being simulated, e.g. experiment, stream and a canonical text of
        the parameters. Equal names give equal streams.

    Returns
    -------
    ndarray of shape (2,), dtype uint64
    """
    spawn = tuple(zlib.crc32(str(name).encode()) for name in names)
    return np.random.SeedSequence(int(seed), spawn_key=spawn).generate_state(2, np.uint64)


def keep_threshold(p):
    """Integer threshold for a Bernoulli(p) gate on 53-bit draws (see Notes of the module)."""
    return np.uint64(round(float(p) * _TWO53))


@njit(cache=True)
def _splitmix64(x):
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _block_state(key, block):
    """xoshiro256** state of block ``block`` of the stream ``key``."""
    s = np.empty(4, dtype=np.uint64)
    x = key[0] ^ _splitmix64(key[1] + np.uint64(block))
    for i in range(4):
        x = x + _GOLDEN
        s[i] = _splitmix64(x)
    return s


@njit(cache=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def _next(s):
    """One raw 64-bit draw; advances ``s`` in place."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True)
def _uniform(s):
    """Uniform on [0, 1) with 53 random bits."""
    return float(_next(s) >> np.uint64(11)) / _TWO53


@njit(cache=True)
def _keep(s, threshold):
    """A Bernoulli gate: 1.0 with probability threshold / 2**53, else 0.0."""
    return 1.0 if (_next(s) >> np.uint64(11)) < threshold else 0.0


@njit(cache=True)
def _normal_pair(s):
    """Two independent standard normals (Marsaglia polar method)."""
    while True:
        u = 2.0 * _uniform(s) - 1.0
        v = 2.0 * _uniform(s) - 1.0
        r = u * u + v * v
        if 0.0 < r < 1.0:
            f = np.sqrt(-2.0 * np.log(r) / r)
            return u * f, v * f


@njit(cache=True)
def _fill_normal(s, out, mean, sd):
    """Fill ``out`` with N(mean, sd**2) draws, two at a time."""
    n = out.size
    i = 0
    while i < n:
        a, b = _normal_pair(s)
        out[i] = mean + sd * a
        if i + 1 < n:
            out[i + 1] = mean + sd * b
        i += 2
