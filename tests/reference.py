"""Slow, obviously correct numpy/Python references for the kernels."""
import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(x):
    z = (x + GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Xoshiro:
    """xoshiro256** on Python integers, seeded as ``rng._block_state``."""

    def __init__(self, key, block):
        x = int(key[0]) ^ splitmix64((int(key[1]) + block) & MASK)
        self.s = []
        for _ in range(4):
            x = (x + GOLDEN) & MASK
            self.s.append(splitmix64(x))

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & MASK

    def next(self):
        s = self.s
        result = (self.rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return result

    def keep(self, p):
        return 1.0 if (self.next() >> 11) < round(p * 2.0 ** 53) else 0.0


def central_moments(x):
    """``(n, mean, M2, M3, M4)`` of each column of ``x`` (shape (N, K)) by two-pass numpy."""
    x = np.asarray(x, dtype=float)
    d = x - x.mean(axis=0)
    return np.stack([np.full(x.shape[1], len(x)), x.mean(axis=0), (d ** 2).sum(0), (d ** 3).sum(0),
                     (d ** 4).sum(0)], axis=1)


def gradient_values_fixed(key, plan, w, I, p, t):
    """Per-sample [grad, loss, inv_grad, inv_loss] of ``_gradient_blocks`` on the same stream."""
    rows = []
    for b in range(plan.nblocks):
        g = Xoshiro(key, b)
        for _ in range(plan.block_size(b)):
            gate = np.array([g.keep(pi) for pi in p])
            o, oi = np.sum(gate * w * I), np.sum(gate * w * I / p)
            rows.append(np.concatenate([-(t - o) * gate * I, [0.5 * (t - o) ** 2],
                                        -(t - oi) * gate * I / p, [0.5 * (t - oi) ** 2]]))
    return np.array(rows)


def inverted_dropout_numpy(rng, n, c, v, p, dist):
    """Vectorized numpy (PCG64) samples of h' = d h / p, with h of mean c and variance v."""
    if dist == "normal":
        h = rng.normal(c, np.sqrt(v), n)
    elif dist == "uniform":
        h = rng.uniform(c - np.sqrt(3 * v), c + np.sqrt(3 * v), n)
    else:
        raise ValueError(dist)
    return (rng.random(n) < p) * h / p
