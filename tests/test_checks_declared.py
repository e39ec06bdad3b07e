"""Every experiment of the catalog makes the checks it declares (``checks=``), with the facts they declare.

Each experiment runs once at a tiny budget (its ``warm`` settings, 1,000 samples, p = 0.5; a few extra points
reach the specs that apply only at other settings); :func:`simulator.experiments.catalog.undeclared` must find
nothing to object to. The last tests show that it objects when a spec is removed, a check is renamed, a fact
is missing or a sub-claim is wrong.
"""
import dataclasses
import math

import pytest

from simulator.data.tasks import load
from simulator.experiments import CATALOG
from simulator.experiments.catalog import CheckSpec, Context, undeclared
from simulator.theory.verdict import Check, Facts

P = 0.5
SAMPLES = 1000
# Points beyond each experiment's warm settings: the specs that apply only elsewhere.
EXTRA = {"training": ({"runs": 2, "epochs": 2, "task": "diabetes", "twin": "true"},
                     {"runs": 2, "epochs": 3, "patience": 1, "task": "diabetes", "twin": "true"})}


def _run(exp, settings):
    q = exp.resolve(settings)
    ctx = Context(exp.name, 1, SAMPLES, None, {"p": P, **exp.keyed(q)})
    return exp.run(P, q, ctx)


@pytest.fixture(scope="module")
def made():
    """Experiment name → the checks of each of its points."""
    return {name: [_run(exp, s) for s in (exp.warm, *EXTRA.get(name, ()))] for name, exp in CATALOG.items()}


@pytest.mark.parametrize("name", list(CATALOG))
def test_each_point_makes_only_declared_checks_with_their_facts(made, name):
    for checks in made[name]:
        assert checks
        assert undeclared(CATALOG[name].checks, checks) == []


@pytest.mark.parametrize("name", list(CATALOG))
def test_each_spec_is_made_somewhere_or_says_where(made, name):
    exp = CATALOG[name]
    everything = [c for checks in made[name] for c in checks]
    assert undeclared([dataclasses.replace(s, only="") for s in exp.checks], everything) == [], \
        "a spec that no point reaches must say where it applies (only=)"


def test_headline_names_are_checks_made():
    """``headline`` quotes checks by name: each name must be a check the experiment makes at its defaults."""
    for exp in CATALOG.values():
        if exp.headline:
            names = {c.check for c in _run(exp, {})}
            assert set(exp.headline) <= names, exp.name


def _old_subclaim(exp, check):
    """The rules by name prefix the sub-claims were decided by before the facts (the reference)."""
    name = check.check
    if exp.name == "relu-shift":
        return "C3-size" if name.startswith("gauss") else "C3"
    if exp.name == "batchnorm":
        return "C4-eval" if name.startswith("eval-") else "C4"
    if exp.name == "variance-shift":
        return "C5-eval" if name.startswith(("eval-", "running-var")) else "C5"
    if exp.name == "task-impact":
        return "C6-ridge" if "ridge" in name else "C6-chain"
    if exp.name == "training":
        quantity = check.params.get("quantity")
        if quantity == "ratio":
            return "C5"
        if quantity in ("dmse_shift", "dce_shift", "dacc_shift"):
            return "C6-shift"
        return "C6-regression" if load(check.params["task"], 0).kind == "regression" else "C6-classification"
    if exp.name == "regime-map":  # a new experiment: its cells' quantities, as the map's table names them
        return {"dmse": "C6-regression", "drop": "C6-classification"}.get(check.params["quantity"], "C6-shift")
    return exp.claim_id


def test_subclaims_are_those_the_names_gave(made):
    for name, exp in CATALOG.items():
        for c in (c for checks in made[name] for c in checks):
            sub = exp.subclaim(c) if exp.subclaim is not None else exp.claim_id
            assert sub == _old_subclaim(exp, c), (name, c.check)
            assert sub in exp.tests()
        if not exp.gated:
            continue  # its fallback checks (made from the specs alone) never happen (training, regime-map)
        for spec in exp.checks:
            # What simulate makes from the specs when nothing could be estimated keeps its sub-claim.
            c = Check(spec.name, spec.kind, math.nan, math.nan, math.nan, params={"p": P})
            sub = exp.subclaim(c) if exp.subclaim is not None else exp.claim_id
            assert sub == _old_subclaim(exp, c), (name, spec.name)


def test_checkpointed_facts_come_back_as_facts():
    c = Check("reg[2]", "exact", 1.0, 1.0, 0.1, facts=Facts(quantity="reg", index=2))
    back = Check(**dataclasses.asdict(c))
    assert back == c and back.facts.index == 2
    assert c.facts.row() == {"quantity": "reg", "index": 2}
    assert Facts("C3-size", "gauss shift", width=4, setting="inputs").row() == {
        "quantity": "gauss shift", "width": 4, "setting": "inputs"}


# The check can fail ---------------------------------------------------------------------------------------

def _inverted(made):
    return CATALOG["inverted-dropout"], made["inverted-dropout"][0]


def test_a_removed_spec_is_caught(made):
    exp, checks = _inverted(made)
    specs = tuple(s for s in exp.checks if s.name != "var-as-written (dist)")
    problems = undeclared(specs, checks)
    assert problems and all("var-as-written" in p and "matches 0 specs" in p for p in problems)


def test_a_spec_never_made_is_caught(made):
    exp, checks = _inverted(made)
    extra = CheckSpec("skew (dist)", "exact", "a check nobody makes", ("skew",), ("setting",))
    assert undeclared((*exp.checks, extra), checks) == ["declared 'skew (dist)' (exact) was not made"]
    assert undeclared((*exp.checks, dataclasses.replace(extra, only="never")), checks) == []


def test_a_renamed_check_is_caught(made):
    exp, checks = _inverted(made)
    renamed = [dataclasses.replace(c, facts=dataclasses.replace(c.facts, quantity="variance"))
               if c.facts.quantity == "var" else c for c in checks]
    problems = undeclared(exp.checks, renamed)
    assert any("'variance'" in p and "matches 0 specs" in p for p in problems)
    assert "declared 'var (dist)' (exact) was not made" in problems


def test_a_missing_or_extra_fact_is_caught(made):
    exp, checks = _inverted(made)
    bare = [dataclasses.replace(checks[0], facts=Facts(quantity=checks[0].facts.quantity))]
    assert "matches 0 specs" in undeclared(exp.checks, bare)[0]
    more = [dataclasses.replace(checks[0], facts=dataclasses.replace(checks[0].facts, layer=1))]
    assert "matches 0 specs" in undeclared(exp.checks, more)[0]


def test_a_wrong_subclaim_is_caught(made):
    exp, checks = CATALOG["batchnorm"], made["batchnorm"][0]
    wrong = [dataclasses.replace(c, facts=dataclasses.replace(c.facts, subclaim="C4")) for c in checks]
    problems = undeclared(exp.checks, wrong)
    assert len(problems) == 3 and all("tests C4, its spec" in p for p in problems)
