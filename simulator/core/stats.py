"""Streaming statistics: per-block moments, Chan/Pébay merging, estimates with MCSE.

A kernel accumulates, per block and per variable, shifted power sums (shift =
the block's first value of that variable; :func:`push_value` one value at a time, or
:func:`accumulate_lanes` 64 samples at a time for kernels that work on groups), turns them into central moments
``(n, mean, M2, M3, M4)`` and hands them over; blocks are merged in index order
with the pairwise formulas of Chan et al. (1979) and Pébay (2008). Everything is
float64.

Notes
-----
Monte Carlo standard errors (N samples, sample central moments m2, m4):

- mean: ``s / sqrt(N)``;
- unbiased variance ``s²``: ``s² sqrt((κ − 1)/N + 2/(N (N − 1)))`` with the
  plug-in kurtosis ``κ = m4/m2²``: the exact variance of s² for i.i.d. samples,
  ``σ⁴ ((κ − 1)/N + 2/(N (N − 1)))``, written so that no term cancels. The first
  term is the kurtosis-aware form (Bernoulli-masked and ReLU outputs are
  heavy-tailed); the second matters only when κ ≈ 1, e.g. a Bernoulli(½) mask
  on an input whose mean dwarfs its spread, where the first vanishes;
- any smooth function of the moments (ratios, differences of variances):
  batch means, the standard deviation of the function over the ``B`` batches
  of consecutive blocks divided by ``sqrt(B)``.
"""
from dataclasses import dataclass

import numpy as np

from .jit import kernel

# Layout of an accumulator row: count, shift, S1, S2, S3, S4.
ACC_WIDTH = 6
# Layout of a moment row: count, mean, M2, M3, M4 (central sums).
MOM_WIDTH = 5


@kernel
def push_value(acc, k, x):
    """Add value ``x`` of variable ``k`` to the accumulator ``acc``."""
    if acc[k, 0] == 0.0:
        acc[k, 1] = x
    y = x - acc[k, 1]
    y2 = y * y
    acc[k, 0] += 1.0
    acc[k, 2] += y
    acc[k, 3] += y2
    acc[k, 4] += y2 * y
    acc[k, 5] += y2 * y2


@kernel
def finish_moments(acc, out):
    """Central moments ``(n, mean, M2, M3, M4)`` of each accumulator row into ``out``."""
    for k in range(acc.shape[0]):
        n = acc[k, 0]
        if n == 0.0:
            out[k, :] = 0.0
            continue
        d = acc[k, 2] / n
        s2, s3, s4 = acc[k, 3], acc[k, 4], acc[k, 5]
        out[k, 0] = n
        out[k, 1] = acc[k, 1] + d
        out[k, 2] = max(s2 - n * d * d, 0.0)
        out[k, 3] = s3 - 3.0 * d * s2 + 2.0 * n * d ** 3
        out[k, 4] = max(s4 - 4.0 * d * s3 + 6.0 * d * d * s2 - 3.0 * n * d ** 4, 0.0)


# Samples are simulated in groups of LANES: one 64-bit mask word per input holds the
# gates of a whole group, and every per-sample quantity is a vector over the group.
LANES = 64
# Each variable keeps HALF partial power sums (lane l and lane l + HALF go to slot l):
# the loops then vectorize, and the summation order stays fixed.
HALF = LANES // 2


@kernel
def accumulate_lanes(V, shift, S):
    """Add the LANES values of each variable (rows of V, shape (K, LANES)) to the partial sums.

    ``S[k, q, l]`` (shape (4, K, HALF)) holds the sums of ``y**(k+1)``, ``y = x − shift[q]``,
    over lanes l and l + HALF of every group so far.
    """
    for q in range(V.shape[0]):
        sh = shift[q]
        for l in range(HALF):
            a = V[q, l] - sh
            b = V[q, l + HALF] - sh
            a2 = a * a
            b2 = b * b
            S[0, q, l] = (S[0, q, l] + a) + b
            S[1, q, l] = (S[1, q, l] + a2) + b2
            S[2, q, l] = (S[2, q, l] + a2 * a) + b2 * b
            S[3, q, l] = (S[3, q, l] + a2 * a2) + b2 * b2


@kernel
def finish_lanes(S, shift, count, out):
    """Central moments of a block from its partial sums (:func:`finish_moments` layout)."""
    K = shift.size
    acc = np.zeros((K, ACC_WIDTH))
    for q in range(K):
        acc[q, 0] = count
        acc[q, 1] = shift[q]
        for k in range(4):
            for l in range(HALF):
                acc[q, 2 + k] += S[k, q, l]
    finish_moments(acc, out)


@kernel
def merge_moments(a, b):
    """Merge moment rows ``b`` into ``a`` in place (Pébay 2008, eq. 2.1-2.4)."""
    for k in range(a.shape[0]):
        na, nb = a[k, 0], b[k, 0]
        if nb == 0.0:
            continue
        if na == 0.0:
            for q in range(a.shape[1]):
                a[k, q] = b[k, q]
            continue
        n = na + nb
        d = b[k, 1] - a[k, 1]
        m2a, m2b, m3a, m3b = a[k, 2], b[k, 2], a[k, 3], b[k, 3]
        a[k, 4] += (b[k, 4] + d ** 4 * na * nb * (na * na - na * nb + nb * nb) / n ** 3
                    + 6.0 * d * d * (na * na * m2b + nb * nb * m2a) / (n * n)
                    + 4.0 * d * (na * m3b - nb * m3a) / n)
        a[k, 3] += (m3b + d ** 3 * na * nb * (na - nb) / (n * n)
                    + 3.0 * d * (na * m2b - nb * m2a) / n)
        a[k, 2] += m2b + d * d * na * nb / n
        a[k, 1] += d * nb / n
        a[k, 0] = n


@kernel
def merge_blocks(batches, blocks, first, blocks_per_batch):
    """Merge per-block moments, in block order, into their batches."""
    for j in range(blocks.shape[0]):
        merge_moments(batches[(first + j) // blocks_per_batch], blocks[j])


def merge_all(rows):
    """Merge a sequence of moment arrays in order; returns a new array."""
    total = np.zeros_like(rows[0])
    for r in rows:
        merge_moments(total, r)
    return total


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate and its standard error."""

    value: float
    mcse: float


def mean_of(m, k):
    """Sample mean of variable ``k`` of a moment array."""
    return m[k, 1]


def var_of(m, k):
    """Unbiased sample variance of variable ``k`` of a moment array."""
    return m[k, 2] / (m[k, 0] - 1.0)


@dataclass(frozen=True)
class Sample:
    """Moments of all variables of one stream, in total and per batch.

    Attributes
    ----------
    total : ndarray of shape (K, 5)
        Moments over all samples.
    batches : ndarray of shape (B, K, 5)
        Moments over each batch of consecutive blocks.
    maxima : ndarray of shape (L,)
        Largest value of each monitored quantity (e.g. an identity's violation).
    """

    total: np.ndarray
    batches: np.ndarray
    maxima: np.ndarray

    @property
    def n(self):
        return int(self.total[0, 0])

    def mean(self, k):
        """Mean of variable ``k``, MCSE ``s/√N``."""
        m = self.total
        return Estimate(m[k, 1], float(np.sqrt(var_of(m, k) / m[k, 0])))

    def var(self, k):
        """Unbiased variance of variable ``k``, MCSE ``s² sqrt((κ − 1)/N + 2/(N (N − 1)))`` (module Notes)."""
        m = self.total
        n, s2 = m[k, 0], var_of(m, k)
        if m[k, 2] == 0.0:
            return Estimate(s2, 0.0)
        excess = max(m[k, 4] * n / (m[k, 2] * m[k, 2]) - 1.0, 0.0)
        return Estimate(s2, float(s2 * np.sqrt(excess / n + 2.0 / (n * (n - 1.0)))))

    def derived(self, f):
        """``f(moments)`` on the total, MCSE by batch means over the batches."""
        per_batch = np.array([f(b) for b in self.batches])
        mcse = float(np.std(per_batch, ddof=1) / np.sqrt(len(per_batch)))
        return Estimate(float(f(self.total)), mcse)
