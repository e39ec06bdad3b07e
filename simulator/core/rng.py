"""Random streams: xoshiro256** seeded per block.

Every piece of random work is cut into fixed blocks. A block's generator state
is derived from a 128-bit *stream key* and the block index, so a block draws the
same numbers whichever thread runs it and in whatever order. Stream keys come
from ``numpy.random.SeedSequence(seed, spawn_key=...)`` over the names of what
is simulated (experiment, stream, parameters), never from global state.

Notes
-----
xoshiro256** (Blackman & Vigna 2018) is seeded with four splitmix64 outputs of
``key0 ^ splitmix64(key1 + block)``, as its authors recommend.

A Bernoulli(p) gate compares a 53-bit uniform integer U with
``t = round(p * 2**53)``: keep when ``U < t``. The effective keep probability
``t / 2**53`` differs from p by less than 2**-53 and p = 1 keeps every unit.
:func:`next_keep` draws U from one raw draw; :func:`next_mask_word` makes 64 such gates
at once, bit-sliced: word k of the stream holds bit ``52 − k`` of all 64 lanes'
U, and a lane is decided at the first bit where its U differs from t. That is
the same comparison, exactly, with far fewer draws: one for p = 1/2, at most m
for a dyadic p = k/2^m, about 8 on average for any other p (each word decides
half of the undecided lanes).

Normals use the 256-layer ziggurat of Marsaglia & Tsang (2000) in the form of
numpy's ``random_standard_normal``: one raw draw gives the layer (8 bits), the
sign (1 bit) and a 52-bit abscissa; 98.8% of draws are accepted at once; the
rest go through the exact wedge test or, for the base layer, Marsaglia's tail
method (1964). The tables are computed at import from ``r`` and ``v``.
"""
import hashlib

import numpy as np

from .jit import inline, kernel

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = 9007199254740992.0
_BIT53 = np.uint64(1 << 53)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_LOW52 = np.uint64((1 << 52) - 1)
_INV53 = 1.0 / 9007199254740992.0


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
    # 128 bits of a hash per name: distinct names (e.g. grid points) do not share a stream.
    spawn = tuple(int.from_bytes(hashlib.sha256(str(name).encode()).digest()[:16], "little") for name in names)
    return np.random.SeedSequence(int(seed), spawn_key=spawn).generate_state(2, np.uint64)


def keep_threshold(p):
    """Integer threshold for a Bernoulli(p) gate on 53-bit draws (see Notes of the module)."""
    return np.uint64(round(float(p) * _TWO53))


_PI50 = "3.14159265358979323846264338327950288419716939937510"


def _ziggurat_tables(n=256, r="3.6541528853610088"):
    """Tables ``(k, w, f, r)`` of the n-layer normal ziggurat (Marsaglia & Tsang 2000).

    Notes
    -----
    With ``f(x) = exp(−x²/2)``, every layer has the area ``v = r f(r) + ∫_r^∞ f``.
    Layer 0 is the base: a rectangle of width ``v / f(r)`` standing for [0, r] and
    the tail. Layer i ≥ 1 is the strip ``[f(x_i), f(x_{i−1})]`` of width ``x_i``
    (``x_255 = r``, ``x_{i−1} = f⁻¹(v / x_i + f(x_i))``, ``x_0 = 0``); a point with
    ``|x| < x_{i−1}`` lies under the density and is accepted at once:
    ``w[i] = x_i / 2**52``, ``k[i] = 2**52 x_{i−1} / x_i``, ``f[i] = f(x_i)``.
    The recursion loses digits near the top, so it runs in 50-digit decimals.
    """
    from decimal import Decimal, localcontext
    with localcontext() as ctx:
        ctx.prec = 50
        r = Decimal(r)
        pi = Decimal(_PI50)
        z = r / Decimal(2).sqrt()
        # erf(z) by its Taylor series, 2/√π Σ (−1)^j z^(2j+1) / (j! (2j+1)).
        total, term, j = Decimal(0), z, 0
        while abs(term) > Decimal(10) ** -60:
            total += term / (2 * j + 1)
            j += 1
            term = -term * z * z / j
        f_r = (-r * r / 2).exp()
        v = r * f_r + (pi / 2).sqrt() * (1 - 2 / pi.sqrt() * total)
        m = Decimal(2) ** 52
        k = np.zeros(n, dtype=np.int64)
        w = np.zeros(n)
        f = np.zeros(n)
        q = v / f_r
        k[0] = int(r / q * m)
        w[0] = float(q / m)
        f[0] = 1.0
        x = r
        for i in range(n - 1, 0, -1):
            below = (-2 * (v / x + (-x * x / 2).exp()).ln()).sqrt() if i > 1 else Decimal(0)
            k[i] = int(below / x * m)
            w[i] = float(x / m)
            f[i] = float((-x * x / 2).exp())
            x = below
    return k, w, f, float(r)


# Index i of these tables is numpy's layer i; layer 0 is the base with the tail.
ZIG_K, ZIG_W, ZIG_F, ZIG_R = _ziggurat_tables()
_ZIG_INV_R = 1.0 / ZIG_R


@kernel
def _splitmix64(x):
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@kernel
def block_state(key, block):
    """xoshiro256** state of block ``block`` of the stream ``key``."""
    s = np.empty(4, dtype=np.uint64)
    x = key[0] ^ _splitmix64(key[1] + np.uint64(block))
    for i in range(4):
        x = x + _GOLDEN
        s[i] = _splitmix64(x)
    return s


@kernel
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


# The generator works on a state held in four local variables: ``draw_*`` functions
# take (s0, s1, s2, s3) and return (value, s0, s1, s2, s3). LLVM then keeps the
# state in registers across a kernel's loop; an array state goes through memory
# on every draw. The array forms (``next_raw``, ``next_normal`` ...) load and store it.

@kernel
def draw_raw(s0, s1, s2, s3):
    """One raw 64-bit xoshiro256** draw: ``(draw, s0, s1, s2, s3)``."""
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@kernel
def draw_uniform(s0, s1, s2, s3):
    """Uniform on [0, 1) with 53 random bits: ``(u, s0, s1, s2, s3)``."""
    r, s0, s1, s2, s3 = draw_raw(s0, s1, s2, s3)
    # Through int64: exact (< 2**53) and much faster than a uint64 conversion.
    return float(np.int64(r >> np.uint64(11))) * _INV53, s0, s1, s2, s3


@kernel
def draw_keep(s0, s1, s2, s3, threshold):
    """A Bernoulli gate: ``(g, s0, s1, s2, s3)``, g = 1.0 with probability threshold / 2**53, else 0.0."""
    r, s0, s1, s2, s3 = draw_raw(s0, s1, s2, s3)
    return (1.0 if (r >> np.uint64(11)) < threshold else 0.0), s0, s1, s2, s3


@kernel
def draw_mask(s0, s1, s2, s3, threshold):
    """64 independent Bernoulli gates in one word: ``(word, s0, s1, s2, s3)``.

    Bit k of ``word`` is 1 with probability ``threshold / 2**53``: lane k keeps when
    its 53-bit integer U_k < threshold, exactly as :func:`next_keep`. The bits of all
    U_k are drawn most significant first, one raw draw per bit position; drawing
    stops once every lane is decided or the remaining bits of the threshold are
    zero (then every undecided lane has U_k >= threshold).
    """
    if threshold >= _BIT53:
        return _ALL, s0, s1, s2, s3
    keep = np.uint64(0)
    open_ = _ALL
    bit = np.uint64(1 << 52)
    rest = threshold  # bits of the threshold at and below ``bit``
    while open_ != 0 and rest != 0:
        r, s0, s1, s2, s3 = draw_raw(s0, s1, s2, s3)
        if threshold & bit:
            keep |= open_ & ~r
            open_ &= r
        else:
            open_ &= ~r
        rest &= ~bit
        bit >>= np.uint64(1)
    return keep, s0, s1, s2, s3


@kernel
def _normal_rare(s0, s1, s2, s3, i, x):
    """The 1.2% of ziggurat draws outside the inner rectangles: the tail or a wedge test.

    Returns ``(|x|, s0, s1, s2, s3)`` with the accepted |x|, or −1.0 for a rejection
    (then a fresh draw starts over). Kept out of :func:`draw_normal` so that the
    fast path stays small enough to be inlined.
    """
    if i == 0:
        # Marsaglia's tail beyond r: x = r + E1/r, accepted when 2 E2 > (E1/r)² (E1, E2 exponential).
        while True:
            u1, s0, s1, s2, s3 = draw_uniform(s0, s1, s2, s3)
            u2, s0, s1, s2, s3 = draw_uniform(s0, s1, s2, s3)
            xx = -_ZIG_INV_R * np.log1p(-u1)
            yy = -np.log1p(-u2)
            if yy + yy > xx * xx:
                return ZIG_R + xx, s0, s1, s2, s3
    # The wedge of layer i: accept when a uniform height in the strip lies under the density.
    u, s0, s1, s2, s3 = draw_uniform(s0, s1, s2, s3)
    if (ZIG_F[i - 1] - ZIG_F[i]) * u + ZIG_F[i] < np.exp(-0.5 * x * x):
        return x, s0, s1, s2, s3
    return -1.0, s0, s1, s2, s3


@kernel
def draw_normal(s0, s1, s2, s3):
    """One standard normal (ziggurat; see the Notes of the module): ``(x, s0, s1, s2, s3)``."""
    while True:
        u, s0, s1, s2, s3 = draw_raw(s0, s1, s2, s3)
        # Signed integers: uint64 → float conversions and unsigned indexing are slow in Numba.
        i = np.intp(u & np.uint64(0xFF))
        a = np.int64((u >> np.uint64(9)) & _LOW52)
        x = float(a) * ZIG_W[i]
        if a >= ZIG_K[i]:
            x, s0, s1, s2, s3 = _normal_rare(s0, s1, s2, s3, i, x)
            if x < 0.0:
                continue
        return (-x if (u >> np.uint64(8)) & np.uint64(1) else x), s0, s1, s2, s3


@inline
def next_raw(s):
    """One raw 64-bit draw; advances ``s`` in place."""
    r, s[0], s[1], s[2], s[3] = draw_raw(s[0], s[1], s[2], s[3])
    return r


@inline
def next_uniform(s):
    """Uniform on [0, 1) with 53 random bits."""
    u, s[0], s[1], s[2], s[3] = draw_uniform(s[0], s[1], s[2], s[3])
    return u


@inline
def next_keep(s, threshold):
    """A Bernoulli gate: 1.0 with probability threshold / 2**53, else 0.0."""
    g, s[0], s[1], s[2], s[3] = draw_keep(s[0], s[1], s[2], s[3], threshold)
    return g


@inline
def next_mask_word(s, threshold):
    """64 Bernoulli gates in one word (see :func:`draw_mask`)."""
    m, s[0], s[1], s[2], s[3] = draw_mask(s[0], s[1], s[2], s[3], threshold)
    return m


@inline
def next_normal(s):
    """One standard normal."""
    x, s[0], s[1], s[2], s[3] = draw_normal(s[0], s[1], s[2], s[3])
    return x


@inline
def next_normal_pair(s):
    """Two independent standard normals."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    a, s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
    b, s[0], s[1], s[2], s[3] = draw_normal(s0, s1, s2, s3)
    return a, b


@inline
def draw_fill_normal(s0, s1, s2, s3, out, mean, sd):
    """Fill ``out`` with N(mean, sd**2) draws; returns the state ``(s0, s1, s2, s3)``."""
    for i in range(out.size):
        x, s0, s1, s2, s3 = draw_normal(s0, s1, s2, s3)
        out[i] = mean + sd * x
    return s0, s1, s2, s3


@inline
def fill_normal(s, out, mean, sd):
    """Fill ``out`` with N(mean, sd**2) draws."""
    s[0], s[1], s[2], s[3] = draw_fill_normal(s[0], s[1], s[2], s[3], out, mean, sd)

