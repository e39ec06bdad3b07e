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
    """xoshiro256** on Python integers, seeded as ``rng.block_state``."""

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


def inverted_dropout_numpy(rng, n, c, v, p, dist):
    """Vectorized numpy (PCG64) samples of h' = d h / p, with h of mean c and variance v."""
    if dist == "normal":
        h = rng.normal(c, np.sqrt(v), n)
    elif dist == "uniform":
        h = rng.uniform(c - np.sqrt(3 * v), c + np.sqrt(3 * v), n)
    else:
        raise ValueError(dist)
    return (rng.random(n) < p) * h / p


class BatchNorm1dNumpy:
    """PyTorch ``nn.BatchNorm1d`` (affine weight 1, bias 0) written out in numpy, one step at a time.

    Training: normalize with the batch mean and the biased batch variance, then
    ``running ← (1 − f) running + f stat`` with the *unbiased* variance, where
    ``f = momentum`` or, for ``momentum=None``, ``1 / num_batches_tracked``.
    Eval: normalize with the running statistics.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        self.eps, self.momentum = eps, momentum
        self.running_mean = np.zeros(num_features)
        self.running_var = np.ones(num_features)
        self.num_batches_tracked = 0

    def train_step(self, x):
        x = np.asarray(x, dtype=float)
        mean, var = x.mean(axis=0), x.var(axis=0)
        self.num_batches_tracked += 1
        f = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
        n = x.shape[0]
        self.running_mean = (1 - f) * self.running_mean + f * mean
        self.running_var = (1 - f) * self.running_var + f * var * n / (n - 1)
        return (x - mean) / np.sqrt(var + self.eps)

    def eval(self, x):
        return (np.asarray(x, dtype=float) - self.running_mean) / np.sqrt(self.running_var + self.eps)


def weighted_sum_numpy(rng, n, c, v, rho, w, noise, p, beta=0.1):
    """Vectorized numpy samples of ``(X_train, X_test)``, ``X = Σ w_i x_i f_i`` on the same inputs.

    ``x_i = c + √v (√ρ z₀ + √(1−ρ) z_i)``; ``f_i`` is ``a_i/p`` (bernoulli), ``1 + U(−β, β)``
    (uout) or ``1 + N(0, (1−p)/p)`` (gaussian).
    """
    d = len(w)
    x = c + np.sqrt(v) * (np.sqrt(rho) * rng.normal(size=(n, 1)) + np.sqrt(1 - rho) * rng.normal(size=(n, d)))
    if noise == "bernoulli":
        f = (rng.random((n, d)) < p) / p
    elif noise == "uout":
        f = 1 + rng.uniform(-beta, beta, (n, d))
    else:
        f = 1 + np.sqrt((1 - p) / p) * rng.normal(size=(n, d))
    return (x * f) @ w, x @ w


# --- network-shift / task-impact: the Linear → BN → ReLU chain (simulator.nn.chain) --------------

def chain_uniform(g):
    """``rng.next_uniform`` on a :class:`Xoshiro`: the top 53 bits of one draw over 2**53."""
    return (g.next() >> 11) / 2.0 ** 53


def chain_noise(g, h, kind, p, beta):
    """Inverted dropout ``h δ / p`` (kind "dropout") or Uout ``h + h r`` on a copy of h, one draw per entry,
    row-major."""
    out = np.array(h, dtype=float)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            if kind == "dropout":
                out[i, j] = out[i, j] * g.keep(p) / p
            else:
                out[i, j] = out[i, j] + out[i, j] * (beta * (2.0 * chain_uniform(g) - 1.0))
    return out


class ChainNumpy:
    """The chain of ``simulator.nn.chain`` in plain numpy, one training batch at a time.

    Each block: noise (per placement), ``z = h W_l``, BatchNorm1d (batch mean and
    biased variance to normalize; running statistics from 0 and 1, updated with
    the unbiased variance; ``momentum=None`` is the cumulative average), ReLU.
    Masks come from a :class:`Xoshiro` on the mask stream.
    """

    def __init__(self, W, placement, p=0.5, beta=0.1, eps=1e-5, momentum=0.1):
        self.W, self.placement, self.p, self.beta = np.asarray(W, dtype=float), placement, p, beta
        self.eps, self.momentum = eps, momentum
        depth, _, d = self.W.shape
        self.rm, self.rv = np.zeros((depth, d)), np.ones((depth, d))
        self.steps = 0

    def reset(self):
        self.rm[:], self.rv[:], self.steps = 0.0, 1.0, 0

    def train_batch(self, x, g, noise=True):
        """One training batch; returns ``(features, [post-ReLU sum of each layer])``."""
        layer_noise = {"before-bn": "dropout", "recalibrated": "dropout", "uout": "uout"}.get(self.placement)
        self.steps += 1
        f = 1.0 / self.steps if self.momentum is None else self.momentum
        h, sums = np.array(x, dtype=float), []
        m = h.shape[0]
        for layer, Wl in enumerate(self.W):
            if noise and layer_noise:
                h = chain_noise(g, h, layer_noise, self.p, self.beta)
            z = h @ Wl
            mean, var = z.mean(axis=0), z.var(axis=0)
            self.rm[layer] = (1 - f) * self.rm[layer] + f * mean
            self.rv[layer] = (1 - f) * self.rv[layer] + f * var * m / (m - 1)
            h = np.maximum((z - mean) / np.sqrt(var + self.eps), 0.0)
            sums.append(h.sum())
        if noise and self.placement == "after-bn":
            h = chain_noise(g, h, "dropout", self.p, self.beta)
        return h, sums

    def eval(self, x):
        """Eval mode; returns ``(features, [BN input z of each layer], [post-ReLU sum of each layer])``."""
        h, zs, sums = np.array(x, dtype=float), [], []
        for layer, Wl in enumerate(self.W):
            z = h @ Wl
            zs.append(z)
            h = np.maximum((z - self.rm[layer]) / np.sqrt(self.rv[layer] + self.eps), 0.0)
            sums.append(h.sum())
        return h, zs, sums


def shift_block_reference(W, placement, p, beta, eps, momentum, train_batches, eval_x, key, block):
    """Per-layer ``[real, moving, Li max, ReLU train mean, ReLU eval mean]`` of a block of ``shift_blocks``.

    ``train_batches`` and ``eval_x`` are the block's inputs (drawn with the
    kernel's own input generator); masks are replayed from ``Xoshiro(key, 3 block + 1)``.
    """
    chain = ChainNumpy(W, placement, p, beta, eps, momentum)
    g = Xoshiro(key, 3 * block + 1)
    depth, _, d = chain.W.shape
    train_sum = np.zeros(depth)
    for x in train_batches:
        train_sum += chain.train_batch(x, g)[1]
    if placement == "recalibrated":
        chain.reset()
        for x in train_batches:
            chain.train_batch(x, None, noise=False)
    _, zs, eval_sums = chain.eval(eval_x)
    rows = []
    for layer in range(depth):
        real = zs[layer].var(axis=0, ddof=1)
        r = (real + chain.eps) / (chain.rv[layer] + chain.eps)
        rows.append([real.mean(), chain.rv[layer].mean(), np.maximum(r, 1 / r).mean(),
                     train_sum[layer] / (len(train_batches) * train_batches[0].size),
                     eval_sums[layer] / eval_x.size])
    return np.array(rows)


def ridge_identity_numpy(rng, X, y, w, p, n):
    """``n`` numpy (PCG64) samples of ``‖y − X̃w‖²`` with ``X̃ = X ∘ δ / p``."""
    masks = rng.random((n,) + X.shape) < p
    r = y - np.einsum("nij,j->ni", X * masks / p, w)
    return (r * r).sum(axis=1)


# --- relu-shift (C3) ---------------------------------------------------------

def relu_fixed_values(key, plan, wx, p):
    """Per-sample ``[ReLU(z') − ReLU(z), z' − z]`` of ``relu_shift.fixed_blocks`` on the same stream."""
    z = sum(float(u) for u in wx)  # in order, as the kernel adds
    rows = []
    for b in range(plan.nblocks):
        g = Xoshiro(key, b)
        for _ in range(plan.block_size(b)):
            zt = sum(g.keep(p) * float(u) / p for u in wx)
            rows.append([max(zt, 0.0) - max(z, 0.0), zt - z])
    return np.array(rows)


def relu_inputs_numpy(rng, n, w, c, v, p):
    """Numpy (PCG64) samples of ``[ReLU(z') − ReLU(z), Gaussian shift | x, z' − z]`` over random inputs.

    ``x ~ N(c, v)`` i.i.d., ``z = w·x``, ``z' = Σ w_i δ_i x_i / p``; the Gaussian shift
    given x is scipy's ``μΦ(μ/s) + sφ(μ/s) − max(μ, 0)`` with ``s² = ((1 − p)/p) Σ (w_i x_i)²``.
    """
    from scipy.stats import norm
    u = (c + np.sqrt(v) * rng.normal(size=(n, len(w)))) * w
    z = u.sum(axis=1)
    zt = (u * (rng.random(u.shape) < p) / p).sum(axis=1)
    s = np.sqrt((1 - p) / p * (u * u).sum(axis=1))
    a = np.divide(z, s, out=np.zeros_like(z), where=s > 0)
    f = np.where(s > 0, z * norm.cdf(a) + s * norm.pdf(a), np.maximum(z, 0)) - np.maximum(z, 0)
    return np.stack([np.maximum(zt, 0) - np.maximum(z, 0), f, zt - z], axis=1)


def relu_elementwise_numpy(rng, n, c, v, p):
    """Numpy (PCG64) samples of ``[ReLU(h'), ReLU(h)]`` with ``h ~ N(c, v)``, ``h' = δ h / p``."""
    h = c + np.sqrt(v) * rng.normal(size=n)
    return np.stack([np.maximum((rng.random(n) < p) * h / p, 0), np.maximum(h, 0)], axis=1)


def dropout_sum_distribution(wx, p):
    """Every value of ``z' = Σ δ_i wx_i / p`` with its probability (all 2^d masks, itertools)."""
    import itertools
    values, probs = [], []
    for mask in itertools.product((0, 1), repeat=len(wx)):
        m = np.array(mask)
        values.append(float(np.sum(m * np.asarray(wx)) / p))
        probs.append(float(np.prod(np.where(m == 1, p, 1 - p))))
    return np.array(values), np.array(probs)


# --- rng ziggurat, mask words and the lane-grouped dropout-gradient kernel (issue 6) ---------

def zig_normal(g):
    """``rng.draw_normal`` on a :class:`Xoshiro`: the 256-layer ziggurat, one step at a time."""
    import math

    from simulator.core.rng import ZIG_F, ZIG_K, ZIG_R, ZIG_W
    while True:
        u = g.next()
        i, negative, a = u & 0xFF, (u >> 8) & 1, (u >> 9) & ((1 << 52) - 1)
        x = a * float(ZIG_W[i])
        if a < int(ZIG_K[i]):
            return -x if negative else x
        if i == 0:
            while True:
                xx = -math.log1p(-chain_uniform(g)) / ZIG_R
                yy = -math.log1p(-chain_uniform(g))
                if yy + yy > xx * xx:
                    return -(ZIG_R + xx) if negative else ZIG_R + xx
        if (ZIG_F[i - 1] - ZIG_F[i]) * chain_uniform(g) + ZIG_F[i] < math.exp(-0.5 * x * x):
            return -x if negative else x


def mask_word(g, threshold):
    """``rng.draw_mask`` on a :class:`Xoshiro`: 64 lanes' 53-bit integers U drawn bit by bit
    (most significant first), each compared with ``threshold`` in full."""
    threshold = int(threshold)
    if threshold >= 1 << 53:
        return (1 << 64) - 1
    u = [0] * 64
    for k in range(52, -1, -1):
        # Stop when every lane is decided (its bits so far differ from the threshold's) or when
        # the threshold's remaining bits are all zero (an undecided lane then has U ≥ threshold).
        if all(u[l] >> (k + 1) != threshold >> (k + 1) for l in range(64)):
            break
        if threshold & ((1 << (k + 1)) - 1) == 0:
            break
        r = g.next()
        for l in range(64):
            u[l] |= ((r >> l) & 1) << k
    # Bits never drawn count as 0: that does not change any decided comparison.
    return sum(1 << l for l in range(64) if u[l] < threshold)


def gradient_values_lanes(key, plan, w, I, p, t, random_inputs=False, c=0.0, sd=1.0):
    """Per-sample values of ``dropout_gradient.gradient_blocks`` on the same stream.

    Groups of 64 samples: first the inputs of each sample of the group (n normals each, with
    random inputs), then one mask word per input; bit l is the gate of sample l.
    """
    from simulator.core.rng import keep_threshold
    n = len(w)
    rows = []
    for b in range(plan.nblocks):
        g = Xoshiro(key, b)
        size = plan.block_size(b)
        for start in range(0, size, 64):
            lanes = min(64, size - start)
            x = [np.array([c + sd * zig_normal(g) for _ in range(n)]) if random_inputs else np.asarray(I)
                 for _ in range(lanes)]
            words = [mask_word(g, keep_threshold(pi)) for pi in p]
            for l in range(lanes):
                gate = np.array([(word >> l) & 1 for word in words], dtype=float)
                o, oi = np.sum(gate * w * x[l]), np.sum(gate * w * x[l] / p)
                rows.append(np.concatenate([-(t - o) * gate * x[l], [0.5 * (t - o) ** 2],
                                            -(t - oi) * gate * x[l] / p, [0.5 * (t - oi) ** 2]]))
    return np.array(rows)


def task_block_reference(W, placement, p, beta, eps, momentum, train_batches, eval_x, key, block, teacher):
    """``[MSE, accuracy, argmax accuracy, Σpt, Σpred, Σt, Σt²]`` (block means) of a network of ``task_block``.

    ``teacher = (rmT, rvT, A, mu, sd)``: targets ``(A ψ(x) − μ)/σ`` with ψ the
    noise-free chain in eval mode on the teacher's BN statistics. The head is
    ``lstsq`` on the stacked training-mode features with an intercept column.
    """
    rmT, rvT, A, mu, sd = teacher
    teach = ChainNumpy(W, "none", p, beta, eps, momentum)
    teach.rm, teach.rv = np.array(rmT, dtype=float), np.array(rvT, dtype=float)

    def targets(x):
        T = (teach.eval(x)[0] @ A.T - mu) / sd
        return T, np.argmax(T, axis=1)

    chain = ChainNumpy(W, placement, p, beta, eps, momentum)
    g = Xoshiro(key, 3 * block + 1)
    F, Y = [], []
    C = A.shape[0]
    for x in train_batches:
        h = chain.train_batch(x, g)[0]
        T, labels = targets(x)
        F.append(np.hstack([h, np.ones((len(h), 1))]))
        Y.append(np.hstack([T, np.eye(C)[labels]]))
    F, Y = np.vstack(F), np.vstack(Y)
    head = np.linalg.solve(F.T @ F, F.T @ Y)
    if placement == "recalibrated":
        chain.reset()
        for x in train_batches:
            chain.train_batch(x, None, noise=False)
    h = chain.eval(eval_x)[0]
    pred = np.hstack([h, np.ones((len(h), 1))]) @ head
    T, labels = targets(eval_x)
    reg, cls = pred[:, :C], pred[:, C:]
    return np.array([((reg - T) ** 2).mean(), (np.argmax(cls, axis=1) == labels).mean(),
                     (np.argmax(reg, axis=1) == labels).mean(), (reg * T).mean(), reg.mean(), T.mean(),
                     (T * T).mean()])


# --- noise kinds of simulator.nn.noise: Gaussian dropout and channel dropout (issue 20) ---------

def gaussian_dropout_reference(key, block, x, p):
    """``x (1 + σ g)``, σ = √((1 − p)/p), one ziggurat normal per entry in row-major order."""
    import math

    g = Xoshiro(key, block)
    sd = math.sqrt((1.0 - p) / p)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            out[i, k] = x[i, k] * (1.0 + sd * zig_normal(g))
    return out


def channel_dropout_reference(key, block, x, p):
    """``x[n, c, :] δ_nc / p``: one raw draw per (sample, channel), row-major, shared by the positions."""
    g = Xoshiro(key, block)
    threshold = round(p * 2.0 ** 53)
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            gate = (1.0 / p) if (g.next() >> 11) < threshold else 0.0
            for t in range(x.shape[2]):
                out[n, c, t] = x[n, c, t] * gate
    return out
