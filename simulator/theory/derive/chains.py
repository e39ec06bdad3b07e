"""The document's derivations as data: each a chain of SymPy steps with labels and assumptions.

Every step carries the formula as written (Unicode and LaTeX), where it stands in
the document (or in the project's docs/theory.md when the document only implies it), the
assumptions it uses, and a SymPy form the checker (:mod:`simulator.theory.derive.checker`)
decides. Sums over n terms are built for each n of ``cases``: the checker proves
them size by size (a proof for n = 1…4 with symbolic entries, not for every n).

Chains
------
gradient (C1, §1)
    ``E[∂E_D/∂w_i] = ∂E_N/∂w_i + w_i p_i(1−p_i) I_i²`` (Baldi & Sadowski 2013).
penalty (C1, companion)
    ``E[E_D] = E_N + ½ Σ w_i² I_i² p_i(1−p_i)``: the regularizer whose gradient is the above.
inverted (C2, §1)
    ``E(h')`` and ``Var(h')`` for ``h' = d h / p``, each equality as written; the
    last one writes ``− μ_h`` for ``− μ_h²`` (the erratum).
batchnorm (C4, §2)
    batch statistics, ``Σ x̂_i = 0``, ``Σ x̂_i² = m σ_B²/(σ_B²+ε)``, ``E[σ_B²] = (m−1)σ²/m``.
variance-shift (C5, conclusion; Li et al. 2019)
    train and test variances and their ratio Δ: one unit, a weighted sum of
    equally correlated inputs, and Uout.
ridge (C6; Wager et al. 2013)
    inverted dropout on a linear regression's inputs is ridge on ``diag(XᵀX)``.
"""
from collections import OrderedDict

import sympy as sp

from .algebra import IID, At, Bernoulli, E, EquiCorrelated, Uniform, Var
from .steps import Assumption, Chain, Step

_PROB = (0.1, 0.9)
_POSITIVE = (0.5, 2.0)
_half = sp.Rational(1, 2)


def _indexed(name, n, **kw):
    return sp.symbols(f"{name}_1:{n + 1}", **kw)


# --------------------------------------------------------------------------- C1
def _linear_unit(n):
    t = sp.Symbol("t")
    w, inp, p, delta = (_indexed(s, n) for s in ("w", "I", "p", "δ"))
    w_test = _indexed("w'", n)
    gates = Assumption("gates", "δ_i ~ Bernoulli(p_i), independent of each other (t, w, I fixed)",
                       sources=(Bernoulli(delta, p),))
    scaled = Assumption("scaled", "w'_i = p_i w_i (weights scaled by the keep probability)",
                        subs=tuple(zip(w_test, [pk * wk for pk, wk in zip(p, w)])))
    domains = {pk: _PROB for pk in p}
    return t, w, inp, p, delta, w_test, (gates, scaled), domains


def _gradient(n, i):
    t, w, inp, p, delta, w_test, assumptions, domains = _linear_unit(n)
    e_n, e_d = sp.Symbol("E_N"), sp.Symbol("E_D")
    others = [j for j in range(n) if j != i]
    d_en = sp.Derivative(e_n, w[i])
    d_ed = sp.Derivative(e_d, w[i])
    var_i = Var(delta[i])
    cross_p = sp.Add(*[w[j] * p[i] * p[j] * inp[i] * inp[j] for j in others])
    steps = [
        Step("§1, E_N (the network with weights w')", "E_N = ½ (t − Σ_i w'_i I_i)²",
             r"E_N = \frac12\left(t - \sum_{i=1}^n w'_i I_i\right)^2",
             _half * (t - sp.Add(*[a * b for a, b in zip(w_test, inp)])) ** 2, lhs=e_n, given=True),
        Step("§1, E_N with w' = p w", "E_N = ½ (t − Σ_i p_i w_i I_i)²",
             r"E_N = \frac12\left(t - \sum_{i=1}^n p_i w_i I_i\right)^2",
             _half * (t - sp.Add(*[a * b * c for a, b, c in zip(p, w, inp)])) ** 2, lhs=e_n,
             uses=("scaled",), sized=True),
        Step("§1, ∂E_N/∂w_i", "∂E_N/∂w_i = −t p_i I_i + w_i p_i² I_i² + Σ_{j≠i} w_j p_i p_j I_i I_j",
             r"\frac{\partial E_N}{\partial w_i} = -t p_i I_i + w_i p_i^2 I_i^2 + \sum_{j\ne i} w_j p_i p_j I_i I_j",
             -t * p[i] * inp[i] + w[i] * p[i] ** 2 * inp[i] ** 2 + cross_p, lhs=d_en,
             uses=("scaled",), sized=True),
        Step("§1, E_D (the network with dropout)", "E_D = ½ (t − Σ_i δ_i w_i I_i)²",
             r"E_D = \frac12\left(t - \sum_{i=1}^n \delta_i w_i I_i\right)^2",
             _half * (t - sp.Add(*[a * b * c for a, b, c in zip(delta, w, inp)])) ** 2, lhs=e_d, given=True),
        Step("§1, ∂E_D/∂w_i", "∂E_D/∂w_i = −t δ_i I_i + w_i δ_i² I_i² + Σ_{j≠i} w_j δ_i δ_j I_i I_j",
             r"\frac{\partial E_D}{\partial w_i} = -t \delta_i I_i + w_i \delta_i^2 I_i^2"
             r" + \sum_{j\ne i} w_j \delta_i \delta_j I_i I_j",
             -t * delta[i] * inp[i] + w[i] * delta[i] ** 2 * inp[i] ** 2
             + sp.Add(*[w[j] * delta[i] * delta[j] * inp[i] * inp[j] for j in others]), lhs=d_ed, sized=True,
             note="an identity in δ: holds for every value of the gates"),
        Step("§1, E[∂E_D/∂w_i], line 1",
             "E[∂E_D/∂w_i] = −t p_i I_i + w_i p_i² I_i² + w_i Var(δ_i) I_i² + Σ_{j≠i} w_j p_i p_j I_i I_j",
             r"E\left[\frac{\partial E_D}{\partial w_i}\right] = -t p_i I_i + w_i p_i^2 I_i^2"
             r" + w_i \operatorname{Var}(\delta_i) I_i^2 + \sum_{j\ne i} w_j p_i p_j I_i I_j",
             -t * p[i] * inp[i] + w[i] * p[i] ** 2 * inp[i] ** 2 + w[i] * var_i * inp[i] ** 2 + cross_p,
             lhs=E(d_ed), uses=("gates",), sized=True, note="uses E[δ²] = p = p² + p(1−p), E[δ_i δ_j] = p_i p_j"),
        Step("§1, E[∂E_D/∂w_i], line 2", "= ∂E_N/∂w_i + w_i Var(δ_i) I_i²",
             r"= \frac{\partial E_N}{\partial w_i} + w_i \operatorname{Var}(\delta_i) I_i^2",
             d_en + w[i] * var_i * inp[i] ** 2, uses=("gates", "scaled"), sized=True),
        Step("§1, E[∂E_D/∂w_i], line 3", "= ∂E_N/∂w_i + w_i p_i(1 − p_i) I_i²",
             r"= \frac{\partial E_N}{\partial w_i} + w_i p_i(1 - p_i) I_i^2",
             d_en + w[i] * p[i] * (1 - p[i]) * inp[i] ** 2, uses=("gates", "scaled"), sized=True),
    ]
    return steps, assumptions, domains


def _penalty(n):
    t, w, inp, p, delta, w_test, assumptions, domains = _linear_unit(n)
    e_n, e_d = sp.Symbol("E_N"), sp.Symbol("E_D")
    pen = _half * sp.Add(*[w[k] ** 2 * inp[k] ** 2 * p[k] * (1 - p[k]) for k in range(n)])
    steps = [
        Step("§1, E_N with w' = p w", "E_N = ½ (t − Σ_i p_i w_i I_i)²",
             r"E_N = \frac12\left(t - \sum_i p_i w_i I_i\right)^2",
             _half * (t - sp.Add(*[a * b * c for a, b, c in zip(p, w, inp)])) ** 2, lhs=e_n, given=True),
        Step("§1, E_D", "E_D = ½ (t − Σ_i δ_i w_i I_i)²", r"E_D = \frac12\left(t - \sum_i \delta_i w_i I_i\right)^2",
             _half * (t - sp.Add(*[a * b * c for a, b, c in zip(delta, w, inp)])) ** 2, lhs=e_d, given=True),
        Step("§1, E[E_D] (docs/theory.md C1 companion, implied by the document)",
             "E[E_D] = E_N + ½ Σ_i w_i² I_i² p_i(1 − p_i)",
             r"E[E_D] = E_N + \frac12 \sum_i w_i^2 I_i^2 p_i (1-p_i)",
             e_n + pen, lhs=E(e_d), uses=("gates",), sized=True),
        Step("§1, gradient of the penalty = the document's regularizer",
             "∂/∂w_i [½ Σ_j w_j² I_j² p_j(1 − p_j)] = w_i p_i(1 − p_i) I_i²",
             r"\frac{\partial}{\partial w_i}\left[\frac12\sum_j w_j^2 I_j^2 p_j(1-p_j)\right] = w_i p_i(1-p_i) I_i^2",
             w[0] * p[0] * (1 - p[0]) * inp[0] ** 2, lhs=sp.Derivative(pen, w[0]), sized=True,
             note="shown for i = 1 (the sum is symmetric in i)"),
    ]
    return steps, assumptions, domains


# --------------------------------------------------------------------------- C2
def _inverted():
    d, h, p = sp.symbols("d h p")
    mu, sigma = sp.symbols("μ_h σ_h")
    h_out = sp.Symbol("h'")
    gate = Assumption("gate", "d ~ Bernoulli(p), independent of h", sources=(Bernoulli((d,), (p,)),))
    unit = Assumption("input", "h has mean μ_h and variance σ_h² (any distribution)",
                      sources=(IID((h,), mu, sigma ** 2),))
    both = ("gate", "input")
    steps = [
        Step("§1, inverted dropout", "h' = (1/p) d h", r"h' = \frac1p d h", d * h / p, lhs=h_out, given=True),
        Step("§1, E(h'), first equality", "E(h') = (1/p) E(d) · μ_h", r"E(h') = \frac1p E(d)\cdot\mu_h",
             E(d) * mu / p, lhs=E(h_out), uses=both),
        Step("§1, E(h'), second equality", "= μ_h", r"= \mu_h", mu, uses=both),
        Step("§1, Var(h'), first equality", "Var(h') = E(h'²) − E(h')²", r"Var(h') = E(h'^2) - E(h')^2",
             E(h_out ** 2) - E(h_out) ** 2, lhs=Var(h_out), uses=both),
        Step("§1, Var(h'), second equality", "= (1/p²) E(d²) E(h²) − μ_h²",
             r"= \frac{1}{p^2} E(d^2) E(h^2) - \mu_h^2", E(d ** 2) * E(h ** 2) / p ** 2 - mu ** 2, uses=both),
        Step("§1, Var(h'), third equality (as written)", "= (1/p) E(h²) − μ_h", r"= \frac1p E(h^2) - \mu_h",
             E(h ** 2) / p - mu, uses=both, note="the document's last line"),
        Step("docs/theory.md C2, corrected (not in the document)", "Var(h') = σ_h²/p + ((1 − p)/p) μ_h²",
             r"Var(h') = \frac{\sigma_h^2}{p} + \frac{1-p}{p}\mu_h^2",
             sigma ** 2 / p + (1 - p) / p * mu ** 2, lhs=Var(h_out), uses=both),
    ]
    return steps, (gate, unit), {p: _PROB, sigma: _POSITIVE}


# --------------------------------------------------------------------------- C4
def _batchnorm(m):
    x = _indexed("x", m)
    xhat, y = _indexed("x̂", m), _indexed("y", m)
    mu_b, var_b = sp.symbols("μ_B σ²_B")
    eps, gamma, beta, mu, sigma = sp.symbols("ε γ β μ σ")
    iid = Assumption("iid", "x_1 … x_m i.i.d. with mean μ and variance σ²", sources=(IID(x, mu, sigma ** 2),))
    steps = [
        Step("§2, batch mean", "μ_B = (1/m) Σ_i x_i", r"\mu_{\text{batch}} = \frac1m\sum_{i=1}^m x_i",
             sp.Add(*x) / m, lhs=mu_b, given=True),
        Step("§2, batch variance (biased)", "σ_B² = (1/m) Σ_i (x_i − μ_B)²",
             r"\sigma_{\text{batch}}^2 = \frac1m\sum_{i=1}^m (x_i - \mu_{\text{batch}})^2",
             sp.Add(*[(xk - mu_b) ** 2 for xk in x]) / m, lhs=var_b, given=True),
        Step("§2, normalization", "x̂_i = (x_i − μ_B)/√(σ_B² + ε)",
             r"\hat x_i = \frac{x_i - \mu_{\text{batch}}}{\sqrt{\sigma_{\text{batch}}^2 + \epsilon}}",
             sp.Matrix([(xk - mu_b) / sp.sqrt(var_b + eps) for xk in x]), lhs=sp.Matrix(xhat), given=True),
        Step("§2, scale and shift", "y_i = γ x̂_i + β", r"y_i = \gamma \hat x_i + \beta",
             sp.Matrix([gamma * xh + beta for xh in xhat]), lhs=sp.Matrix(y), given=True),
        Step("docs/theory.md C4, normalized values sum to zero", "Σ_i x̂_i = 0", r"\sum_i \hat x_i = 0",
             sp.Integer(0), lhs=sp.Add(*xhat), sized=True),
        Step("docs/theory.md C4, normalized squares", "Σ_i x̂_i² = m σ_B²/(σ_B² + ε)",
             r"\sum_i \hat x_i^2 = \frac{m\,\sigma_B^2}{\sigma_B^2 + \epsilon}",
             m * var_b / (var_b + eps), lhs=sp.Add(*[xh ** 2 for xh in xhat]), sized=True),
        Step("docs/theory.md C4, bias of the batch variance", "E[σ_B²] = ((m − 1)/m) σ²",
             r"E[\sigma_B^2] = \frac{m-1}{m}\sigma^2", sp.Rational(m - 1, m) * sigma ** 2, lhs=E(var_b),
             uses=("iid",), sized=True),
    ]
    return steps, (iid,), {eps: _POSITIVE, sigma: _POSITIVE}


# --------------------------------------------------------------------------- C5
def _variance_shift(d):
    a, x, p, c, v, rho, r, beta = sp.symbols("a x p c v ρ r β")
    gates, xs, w = _indexed("a", d), _indexed("x", d), _indexed("w", d)
    X, X_test, S, S_test, U, U_test = sp.symbols("X X_test S S_test U U_test")
    norm, cos = sp.symbols("‖w‖ cosθ")
    assumptions = (
        Assumption("gate", "a ~ Bernoulli(p), independent of x", sources=(Bernoulli((a,), (p,)),)),
        Assumption("input", "x has mean c and variance v", sources=(IID((x,), c, v),)),
        Assumption("gates", "a_i ~ Bernoulli(p), independent of each other and of x_1 … x_d",
                   sources=(Bernoulli(gates, (p,) * d),)),
        Assumption("inputs", "x_1 … x_d have mean c, variance v and equal pairwise correlation ρ",
                   sources=(EquiCorrelated(xs, c, v, rho),)),
        Assumption("uout", "r ~ U(−β, β), independent of x", sources=(Uniform(r, beta),)),
    )
    one = ("gate", "input")
    many = ("gates", "inputs")
    train1 = (c ** 2 + v) / p - c ** 2
    shared = rho * v * norm ** 2 * (d * cos ** 2 - 1)
    steps = [
        Step("C5, one unit, train", "X = a x / p", r"X = a x / p", a * x / p, lhs=X, given=True),
        Step("C5, one unit, test", "X_test = x", r"X_{\text{test}} = x", x, lhs=X_test, given=True),
        Step("C5, one unit, train mean", "E_train[X] = c", r"E_{\text{train}}[X] = c", c, lhs=E(X), uses=one),
        Step("C5, one unit, test mean", "E_test[X] = c", r"E_{\text{test}}[X] = c", c, lhs=E(X_test), uses=one),
        Step("C5, one unit, train variance", "Var_train(X) = (1/p)(c² + v) − c²",
             r"\operatorname{Var}_{\text{train}}(X) = \frac1p(c^2+v) - c^2", train1, lhs=Var(X), uses=one),
        Step("C5, one unit, test variance", "Var_test(X) = v", r"\operatorname{Var}_{\text{test}}(X) = v", v,
             lhs=Var(X_test), uses=one),
        Step("C5, one unit, shift ratio", "Δ(p) = v / ((1/p)(c² + v) − c²)",
             r"\Delta(p) = \frac{v}{\frac1p(c^2+v) - c^2}", v / train1, lhs=Var(X_test) / Var(X), uses=one),
        Step("C5, weighted sum, train", "S = Σ_i w_i a_i x_i / p", r"S = \sum_i w_i a_i x_i / p",
             sp.Add(*[wk * ak * xk for wk, ak, xk in zip(w, gates, xs)]) / p, lhs=S, given=True),
        Step("C5, weighted sum, test", "S_test = Σ_i w_i x_i", r"S_{\text{test}} = \sum_i w_i x_i",
             sp.Add(*[wk * xk for wk, xk in zip(w, xs)]), lhs=S_test, given=True),
        Step("C5, weight norm", "‖w‖ = √(Σ_i w_i²)", r"\|w\| = \sqrt{\textstyle\sum_i w_i^2}",
             sp.sqrt(sp.Add(*[wk ** 2 for wk in w])), lhs=norm, given=True),
        Step("C5, angle to the all-ones vector", "cos θ = Σ_i w_i / (√d ‖w‖)",
             r"\cos\theta = \frac{\sum_i w_i}{\sqrt d\,\|w\|}", sp.Add(*w) / (sp.sqrt(d) * norm), lhs=cos,
             given=True),
        Step("C5, weighted sum, train variance", "Var_train(S) = ((1/p)(c² + v) − c²) ‖w‖² + ρ v ‖w‖² (d cos²θ − 1)",
             r"\operatorname{Var}_{\text{train}}(S) = \left(\frac1p(c^2+v) - c^2\right)\|w\|^2"
             r" + \rho v \|w\|^2 (d\cos^2\theta - 1)", train1 * norm ** 2 + shared, lhs=Var(S), uses=many, sized=True),
        Step("C5, weighted sum, test variance", "Var_test(S) = v ‖w‖² + ρ v ‖w‖² (d cos²θ − 1)",
             r"\operatorname{Var}_{\text{test}}(S) = v\|w\|^2 + \rho v \|w\|^2 (d\cos^2\theta - 1)",
             v * norm ** 2 + shared, lhs=Var(S_test), uses=many, sized=True),
        Step("C5, weighted sum, shift ratio",
             "Δ(p, d) = [v + ρv(d cos²θ − 1)] / [(1/p)(c² + v) − c² + ρv(d cos²θ − 1)]",
             r"\Delta(p, d) = \frac{v + \rho v (d\cos^2\theta - 1)}{\frac1p(c^2+v) - c^2 + \rho v(d\cos^2\theta - 1)}",
             (v + rho * v * (d * cos ** 2 - 1)) / (train1 + rho * v * (d * cos ** 2 - 1)),
             lhs=Var(S_test) / Var(S), uses=many, sized=True),
        Step("C5, Uout, train", "U = x + x r", r"U = x + x r", x + x * r, lhs=U, given=True),
        Step("C5, Uout, test", "U_test = x", r"U_{\text{test}} = x", x, lhs=U_test, given=True),
        Step("C5, Uout, train variance", "Var_train(U) = v + (β²/3)(c² + v)",
             r"\operatorname{Var}_{\text{train}}(U) = v + \frac{\beta^2}{3}(c^2+v)",
             v + beta ** 2 / 3 * (c ** 2 + v), lhs=Var(U), uses=("uout", "input")),
        Step("C5, Uout, shift ratio", "Δ_Uout = v / (v + β²(c² + v)/3)",
             r"\Delta_{\text{Uout}} = \frac{v}{v + \beta^2(c^2+v)/3}", v / (v + beta ** 2 * (c ** 2 + v) / 3),
             lhs=Var(U_test) / Var(U), uses=("uout", "input")),
    ]
    return steps, assumptions, {p: _PROB, v: _POSITIVE, rho: (0.05, 0.95), beta: _POSITIVE}


# --------------------------------------------------------------------------- C6
def _minimizer_checked(rows, n):
    return rows <= 2 and n <= 2


def _ridge(rows, n):
    p = sp.Symbol("p")
    X = sp.Matrix(rows, n, lambda k, j: sp.Symbol(f"X_{k + 1}{j + 1}"))
    D = sp.Matrix(rows, n, lambda k, j: sp.Symbol(f"δ_{k + 1}{j + 1}"))
    Xt = sp.Matrix(rows, n, lambda k, j: sp.Symbol(f"X̃_{k + 1}{j + 1}"))
    y = sp.Matrix(_indexed("y", rows))
    w = sp.Matrix(_indexed("w", n))
    lam = (1 - p) / p
    gram = X.T * X
    diag = sp.diag(*[gram[j, j] for j in range(n)])
    masks = Assumption("masks", "δ_kj ~ Bernoulli(p) i.i.d., independent of X and y",
                       sources=(Bernoulli(list(D), (p,) * (rows * n)),))
    loss = ((y - Xt * w).T * (y - Xt * w))[0]
    expected = E(loss)
    # The minimizer's algebra grows fast with n: it is built (and checked) at small sizes only.
    w_star = ((gram + lam * diag).LUsolve(X.T * y) if _minimizer_checked(rows, n)
              else sp.Matrix(_indexed("w*", n)))
    steps = [
        Step("C6, inverted dropout on the inputs", "X̃ = (δ ∘ X)/p", r"\tilde X = (\delta \circ X)/p",
             D.multiply_elementwise(X) / p, lhs=Xt, given=True),
        Step("C6, expected loss (Wager et al. 2013)",
             "E‖y − X̃w‖² = ‖y − Xw‖² + ((1 − p)/p) wᵀ diag(XᵀX) w",
             r"E\|y - \tilde X w\|^2 = \|y - Xw\|^2 + \frac{1-p}{p} w^\top \operatorname{diag}(X^\top X) w",
             ((y - X * w).T * (y - X * w))[0] + lam * (w.T * diag * w)[0], lhs=expected,
             uses=("masks",), sized=True),
        Step("C6, gradient", "∇_w E‖y − X̃w‖² = 2 (XᵀX + ((1 − p)/p) diag(XᵀX)) w − 2 Xᵀy",
             r"\nabla_w E\|y - \tilde X w\|^2 = 2\left(X^\top X + \frac{1-p}{p}\operatorname{diag}(X^\top X)\right)w"
             r" - 2X^\top y",
             2 * (gram + lam * diag) * w - 2 * X.T * y, lhs=sp.Matrix([sp.Derivative(expected, wj) for wj in w]),
             uses=("masks",), sized=True),
        Step("C6, minimizer (gradient zero at w*)", "w* = (XᵀX + ((1 − p)/p) diag(XᵀX))⁻¹ Xᵀy",
             r"w^* = \left(X^\top X + \frac{1-p}{p}\operatorname{diag}(X^\top X)\right)^{-1} X^\top y",
             sp.zeros(n, 1), lhs=sp.Matrix([At(sp.Derivative(expected, wj), sp.Tuple(*w), sp.Tuple(*w_star))
                                            for wj in w]),
             uses=("masks",), sized=True, only=_minimizer_checked,
             note="a minimum: the Hessian 2(XᵀX + ((1−p)/p) diag(XᵀX)) is positive definite for 0 < p < 1 "
                  "and X without a zero column"),
    ]
    return steps, (masks,), {p: _PROB}


CHAINS = OrderedDict((c.name, c) for c in (
    Chain("gradient", "C1", "Dropout gradient = regularized gradient", "§1",
          lambda n, i: _gradient(n, i - 1), cases=tuple({"n": n, "i": i + 1} for n in range(1, 5) for i in range(n)),
          sizes="n = 1…4, every i"),
    Chain("penalty", "C1", "Expected dropout loss = ensemble loss + penalty", "§1 (companion)",
          lambda n: _penalty(n), cases=tuple({"n": n} for n in range(1, 5)), sizes="n = 1…4"),
    Chain("inverted", "C2", "Inverted-dropout mean and variance", "§1", lambda: _inverted()),
    Chain("batchnorm", "C4", "Batch-normalization identities", "§2",
          lambda m: _batchnorm(m), cases=tuple({"m": m} for m in range(1, 5)), sizes="m = 1…4"),
    Chain("variance-shift", "C5", "Dropout before BN: train and test variances", "conclusion (Li et al. 2019)",
          lambda d: _variance_shift(d), cases=tuple({"d": d} for d in range(1, 5)), sizes="d = 1…4"),
    Chain("ridge", "C6", "Inverted dropout in linear regression = ridge on diag(XᵀX)", "§1 regression remark",
          lambda rows, n: _ridge(rows, n),
          cases=tuple({"rows": r, "n": n} for r, n in ((2, 1), (2, 2), (3, 2), (2, 3), (2, 4))),
          sizes="(rows, n) = (2, 1), (2, 2), (3, 2), (2, 3), (2, 4)"),
))
