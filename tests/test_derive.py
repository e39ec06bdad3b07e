"""The derivation checker: proven chains stay proven, the erratum is found, and altered steps are caught."""
import dataclasses
import functools
import json
import threading

import pytest
import sympy as sp

from simulator.core.errors import ParameterError
from simulator.theory import derive
from simulator.theory.derive import CHAINS, check, check_all, check_chain, derivation_checks
from simulator.theory.derive.text import format_results
from simulator.theory.verdict import judge
from tests.conftest import run_cli as _run

# The document's one wrong step: the last line of Var(h').
ERRATUM = ("inverted", 5)


def small(chain):
    """The chain at one small size (n = 2 where it sums): mutants are checked fast."""
    keep = [c for c in chain.cases if all(v <= 2 for v in c.values())][-1:] or chain.cases[:1]
    return dataclasses.replace(chain, cases=tuple(keep))


# --- mutations, built from the chain data --------------------------------------
def _entrywise(fn):
    def mutate(e):
        return e.applyfunc(fn) if isinstance(e, sp.MatrixBase) else fn(e)
    return mutate


@_entrywise
def flip_sign(e):
    """The first term's sign flipped (the whole expression's when it is not a sum)."""
    if isinstance(e, sp.Add):
        first, *rest = e.args
        return sp.Add(-first, *rest)
    return -e


@_entrywise
def drop_square(e):
    """The first square in the expression replaced by its base."""
    for node in sp.preorder_traversal(e):
        if isinstance(node, sp.Pow) and node.exp == 2:
            return e.xreplace({node: node.base})
    return e


@_entrywise
def swap_p(e):
    """Every keep probability p replaced by 1 − p."""
    return e.xreplace({s: 1 - s for s in e.free_symbols if s.name.startswith("p")})


MUTATIONS = {"sign flipped": flip_sign, "square dropped": drop_square, "p for 1−p": swap_p}


def _mutants():
    """One alteration per checked step, the kinds taken in turn among those that change it."""
    for name, chain in CHAINS.items():
        steps, _, _ = chain.build(**chain.cases[0])
        for k, step in enumerate(steps):
            kinds = [kind for kind, mutate in MUTATIONS.items() if mutate(step.rhs) != step.rhs]
            if not step.given and kinds:
                yield name, k, kinds[k % len(kinds)]


MUTANTS = list(_mutants())


@functools.lru_cache(maxsize=None)
def mutant_result(name, index, kind):
    return check(small(CHAINS[name]).altered(index, rhs=MUTATIONS[kind]))


# --- the chains as the document and docs/theory.md state them ---------------------------
def test_every_step_proven_except_the_erratum():
    for r in check_all():
        for i, s in enumerate(r.steps):
            if (r.name, i) == ERRATUM:
                continue
            assert s.status in ("given", "proven"), (r.name, i, s.label, s.status, s.residual, s.note)
        assert r.first_false == (ERRATUM[1] if r.name == ERRATUM[0] else None)


def test_inverted_last_line_false_with_residual_mu_minus_mu_squared():
    r = check_chain("inverted")
    s = r.steps[ERRATUM[1]]
    assert s.status == "false" and r.first_false == ERRATUM[1]
    mu = sp.Symbol("μ_h")
    residual = sp.sympify(s.residual.replace("−", "-").replace("²", "**2"), locals={"μ_h": mu})
    assert sp.expand(residual - (mu - mu ** 2)) == 0 or sp.expand(residual + (mu - mu ** 2)) == 0
    assert "μ_h" in s.text and "μ_h²" not in s.text
    # The corrected formula right after it is proven.
    assert r.steps[ERRATUM[1] + 1].status == "proven"
    line = format_results([r]).strip().splitlines()[-1]
    assert line.startswith("First wrong step of the document: inverted") and s.label in line


def test_sums_are_proven_at_every_size_and_say_so():
    step = check_chain("gradient").steps[7]
    assert step.status == "proven" and "n = 1…4" in step.note


def test_numeric_cross_check_agrees_with_symbolic_verdict():
    for r in check_all():
        for s in r.steps:
            if s.status == "proven":
                assert s.numeric is True, (r.name, s.label)
            elif s.status == "false":
                assert s.numeric is False, (r.name, s.label)
            elif s.status == "given":
                assert s.numeric is None


# --- a verifier must be able to fail --------------------------------------------
@pytest.mark.parametrize("name,index,kind", MUTANTS, ids=[f"{n}-{k}-{m}" for n, k, m in MUTANTS])
def test_altered_step_is_caught_at_that_step(name, index, kind):
    r = mutant_result(name, index, kind)
    s = r.steps[index]
    if s.status == "proven":
        # The alteration kept the value (e.g. p(1−p) under p → 1−p): the numbers must agree too.
        assert s.numeric is True
        pytest.skip(f"{kind} leaves step {index} of {name} unchanged in value")
    assert s.status == "false" and s.numeric is False and s.residual
    original = ERRATUM[1] if name == ERRATUM[0] else None
    assert r.first_false == (index if original is None else min(index, original))
    assert all(t.status in ("given", "proven") for t in r.steps[:r.first_false])


def test_every_chain_and_every_kind_of_alteration_is_caught_somewhere():
    chains, kinds = set(CHAINS), set(MUTATIONS)
    for name, index, kind in MUTANTS:
        if name in chains or kind in kinds:
            if mutant_result(name, index, kind).steps[index].status == "false":
                chains.discard(name)
                kinds.discard(kind)
    assert not chains and not kinds


def test_missing_assumption_is_reported_not_accepted():
    # E_N = ½(t − Σ p_i w_i I_i)² without stating w' = p w.
    r = check(small(CHAINS["gradient"]).altered(1, uses=lambda u: ()))
    s = r.steps[1]
    assert s.status == "needs-assumption" and "w'_i = p_i w_i" in s.note and s.assumptions == ()
    # (1/p) E(d) μ_h = μ_h without the gate's distribution (the linearity step before it needs none).
    r = check(CHAINS["inverted"].altered(2, uses=lambda u: [k for k in u if k != "gate"]))
    assert r.steps[2].status == "needs-assumption" and "Bernoulli" in r.steps[2].note
    assert r.first_false == ERRATUM[1]
    outcomes = {c.params["step"]: c.outcome for _, c in derivation_checks([r])}
    assert outcomes[2] == "undecided"


def test_timeout_yields_undecided_with_numeric_check():
    r = check(CHAINS["inverted"], timeout=1e-6)
    checked = [s for s in r.steps if s.status != "given"]
    assert checked and all(s.status == "undecided" for s in checked)
    assert all(s.numeric is not None and "ran past" in s.note for s in checked)
    assert r.first_false is None


def test_checks_off_the_main_thread_without_a_time_limit():
    out = []
    t = threading.Thread(target=lambda: out.append(check(CHAINS["inverted"])))
    t.start()
    t.join()
    assert out[0].first_false == ERRATUM[1]


# --- API for verify and the report ------------------------------------------------
def test_derivation_checks_one_per_checked_step():
    results = check_all()
    checks = derivation_checks(results)
    assert len(checks) == sum(s.status != "given" for r in results for s in r.steps)
    claims = {r.name: r.claim for r in results}
    for claim, c in checks:
        assert c.kind == "derivation" and claim == claims[c.params["chain"]]
        assert c.closed_form == c.estimate == c.mcse == 0.0
        assert c.outcome in ("proven", "false", "undecided")
        assert judge(c, 3.0).verdict == c.outcome
    wrong = [c for _, c in checks if c.outcome == "false"]
    assert [(c.params["chain"], c.params["step"]) for c in wrong] == [ERRATUM]
    assert wrong[0].check == "inverted: §1, Var(h'), third equality (as written)"


def test_unknown_chain_raises_parameter_error():
    with pytest.raises(ParameterError, match="unknown chain 'x'; valid: gradient, penalty"):
        check_chain("x")


# --- CLI ------------------------------------------------------------------------


def test_cli_unknown_chain_one_line_exit_2(capsys):
    code, out, err = _run(capsys, "derive", "x")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["error: unknown chain 'x'; valid: " + ", ".join(CHAINS)]


def test_cli_table_names_first_wrong_step(capsys):
    code, out, err = _run(capsys, "derive", "inverted")
    assert code == 0
    assert "✗" in out and "✓" in out and "residual (left − right): μ_h − μ_h²" in out
    assert out.strip().splitlines()[-1].startswith("First wrong step of the document: inverted [C2] step 5")


def test_cli_json_and_latex_to_file(capsys, tmp_path):
    target = tmp_path / "d.json"
    code, out, err = _run(capsys, "derive", "inverted", "--format", "json", "--out", str(target))
    assert code == 0 and out == ""
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["first_false"] == {"chain": "inverted", "step": 5}
    assert data["chains"][0]["steps"][5]["status"] == "false"
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"]
    code, out, err = _run(capsys, "derive", "batchnorm", "--format", "latex")
    assert code == 0 and r"\begin{align*}" in out and r"\checkmark" in out


def test_package_exports():
    assert set(derive.__all__) >= {"CHAINS", "check_chain", "check_all", "derivation_checks"}
    assert list(CHAINS) == ["gradient", "penalty", "inverted", "batchnorm", "variance-shift", "ridge"]
