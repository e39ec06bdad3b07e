"""The experiment catalog: what an experiment declares and how its parameters are validated.

An :class:`Experiment` declares its parameters (name, type, default, valid
range), its checks (name, kind, what is compared), the claim in words, its
source and a ``run`` function. ``verify_points`` lists the parameter settings
(beyond the defaults and the grid of p) that ``verify`` needs to cover the claim;
``validate(values)`` checks combinations of parameters. ``headline`` names the
measurements that ``verify`` quotes in its summary of the claim. ``run(p, params, ctx)`` (p the keep
probability, params the validated parameters, ctx the run's seed, streams, samples, threads and progress)
returns a list of :class:`~simulator.theory.verdict.Check`; judging them is done elsewhere.
``subclaim(check)`` names the sub-claim a check tests (a key of :data:`simulator.theory.claims.CLAIMS`; the
experiment's ``claim_id`` when None); where its :class:`CheckSpec` declare sub-claims it defaults to
:func:`by_facts`, the sub-claim the check was made with.
``warm`` are the settings of the tiny first-run compile (:mod:`simulator.runs.warmup`); ``quick(values)``
returns the settings ``verify --quick`` uses, for experiments whose budget is a parameter; ``p_grid``
replaces ``verify``'s grid of p where the experiment is too costly for all of it. ``runs_param`` names
the parameter that counts its Monte Carlo samples when they are training runs (``--samples`` then
does not apply to it). ``kernels`` are the top-level compiled kernels the first run must compile, where they
are not the experiment module's own block kernels (:mod:`simulator.runs.warmup`). ``gated`` says that each
sample draws its gates with keep probability p, so that a run with too few kept (or dropped) gates cannot
estimate an MCSE and its sampled checks are inconclusive (:func:`simulator.runs.simulate.too_few_gates`).
``self_tests`` is False for an experiment whose checks are all findings about the document (a committed
map's cells): it takes no share of the self-tests' family-wise level.
``subclaims`` are the sub-claims its checks may test (its ``claim_id`` alone when empty): ``simulate``
prints a claim's line once every chosen experiment that may test it is done.
"""
import difflib
import math
from dataclasses import dataclass, field

from ..core.errors import ParameterError, shown
from ..core.rng import stream_key


def _number(value, cast):
    if isinstance(value, str):
        value = value.strip().replace("_", "")
    x = float(value)
    if cast is int:
        if not x.is_integer():
            raise ValueError(value)
        return int(x)
    return x


def suggest(name, names):
    """`` (did you mean X?)`` for the closest of ``names``, or ``""``."""
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Param:
    """A parameter of an experiment.

    Attributes
    ----------
    name : str
    type : {"float", "int", "choice", "choices", "floats"}
        ``choices`` and ``floats`` are comma-separated lists.
    default : object
    help : str
    low, high : float or None
        Bounds; ``low_open``/``high_open`` make them strict.
    choices : tuple of str
    none : bool
        Whether the text ``none`` is accepted (value ``None``).
    keyed : bool
        Whether the value enters the key of the experiment's random streams (:class:`Context`). A
        parameter that only selects data drawn from its own key (the teacher's ``rows``) stays out, so
        that its settings share their streams (common random numbers) and adding it changed no number.
    """

    name: str
    type: str
    default: object
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    none: bool = False
    keyed: bool = True

    def allowed(self):
        """What values are allowed, in words."""
        if self.type in ("choice", "choices"):
            text = "one of " + ", ".join(self.choices)
            text += " (comma-separated list)" if self.type == "choices" else ""
        else:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            kind = {"float": "a number", "int": "an integer", "floats": "comma-separated numbers"}[self.type]
            left = "(" if self.low_open or self.low is None else "["
            right = ")" if self.high_open or self.high is None else "]"
            text = f"{kind} in {left}{lo}, {hi}{right}"
        return text + (" or none" if self.none else "")

    def _fail(self, value):
        raise ParameterError(f"{self.name}={shown(value)}: must be {self.allowed()}")

    def _scalar(self, value, cast):
        try:
            x = _number(value, cast)
        except (TypeError, ValueError, OverflowError):
            self._fail(value)
        if not math.isfinite(x):
            self._fail(value)
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            self._fail(value)
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            self._fail(value)
        return x

    def parse(self, value):
        """Validate ``value`` (text from the command line or a Python value) and return it typed."""
        if self.none and (value is None or (isinstance(value, str) and value.strip().lower() == "none")):
            return None
        if self.type in ("float", "int"):
            return self._scalar(value, float if self.type == "float" else int)
        if self.type == "floats":
            items = value.split(",") if isinstance(value, str) else list(value)
            if not items or any(isinstance(i, str) and not i.strip() for i in items):
                self._fail(value)
            return tuple(self._scalar(i, float) for i in items)
        items = value.split(",") if isinstance(value, str) else list(value) if self.type == "choices" else [value]
        items = [str(i).strip() for i in items]
        for i in items:
            if i not in self.choices:
                raise ParameterError(f"{self.name}={shown(i)}: must be {self.allowed()}{suggest(i, self.choices)}")
        return tuple(items) if self.type == "choices" else items[0]

    def show(self, value):
        """Text form of a parsed value."""
        if value is None:
            return "none"
        if isinstance(value, tuple):
            return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class CheckSpec:
    """A check an experiment makes, as listed by ``cli.py list``.

    Attributes
    ----------
    name, kind, compares : str
        The name as listed (a pattern such as ``reg[i]``), the kind, and what is compared.
    quantities : tuple of str
        The ``quantity`` facts of the checks it stands for (:class:`simulator.theory.verdict.Facts`): a
        made check matches the spec of its quantity and kind.
    facts : tuple of str
        The facts, beyond ``quantity``, that each of its checks carries (``index``, ``layer``, ``width``,
        ``setting``, ``task``).
    maybe : tuple of str
        Facts that only some of its checks carry (``index`` of the vector identities among scalar ones).
    also : tuple of str
        Other kinds its checks may have (an approximation that claims nothing at some settings is measured).
    settings : tuple of str
        The values its checks' ``setting`` fact may take (empty: any), e.g. ``("none",)`` for the noise-free
        network's twin of a per-placement check.
    subclaim : str, tuple of str or None
        The sub-claim its checks test (None: the experiment's claim; a tuple: one of these).
    only : str
        Where it is made only at some settings, which (in words); empty: at every setting.
    """

    name: str
    kind: str
    compares: str
    quantities: tuple = ()
    facts: tuple = ()
    maybe: tuple = ()
    also: tuple = ()
    settings: tuple = ()
    subclaim: str | tuple | None = None
    only: str = ""


def undeclared(specs, checks):
    """What disagrees between the declared ``specs`` and the made ``checks``, in words (empty: they agree).

    Each check must match exactly one spec: its kind (or one of the spec's ``also``), its ``quantity``
    among the spec's ``quantities``, its ``setting`` among the spec's ``settings`` (when it lists any), the
    facts the spec declares and no others but its ``maybe``; and test the spec's sub-claim. Each spec
    without ``only`` must be matched by some check.
    """
    problems, used = [], set()
    for c in checks:
        have = set(c.facts.row())
        alike = [s for s in specs if c.kind in (s.kind, *s.also) and c.facts.quantity in s.quantities
                 and (not s.settings or c.facts.setting in s.settings)]
        mine = [s for s in alike if {"quantity", *s.facts} <= have <= {"quantity", *s.facts, *s.maybe}]
        if len(mine) != 1:
            problems.append(f"{c.check!r} ({c.kind}, quantity {c.facts.quantity!r}, facts {sorted(have)}) matches "
                            f"{len(mine)} specs" + (f" (by kind and quantity: {[s.name for s in alike]})"
                                                   if alike else ""))
            continue
        spec = mine[0]
        used.add(spec.name + "/" + spec.kind)
        if c.facts.subclaim not in (spec.subclaim if isinstance(spec.subclaim, tuple) else (spec.subclaim,)):
            problems.append(f"{c.check!r} tests {c.facts.subclaim}, its spec {spec.name!r} says {spec.subclaim}")
    for s in specs:
        if not s.only and s.name + "/" + s.kind not in used:
            problems.append(f"declared {s.name!r} ({s.kind}) was not made")
    return problems


def by_facts(claim_id, specs):
    """An experiment's ``subclaim(check)``: the check's ``subclaim`` fact, else its spec's (a check that
    ``simulate`` made from the spec alone, when nothing could be estimated), else ``claim_id``."""
    named = {s.name: s.subclaim for s in specs if isinstance(s.subclaim, str)}

    def subclaim(check):
        return check.facts.subclaim or named.get(check.check) or claim_id
    return subclaim


@dataclass(frozen=True)
class Experiment:
    """An experiment of the catalog (see the module docstring)."""

    name: str
    claim_id: str
    claim: str
    source: str
    params: tuple
    checks: tuple
    run: object
    samples: int = 1_000_000
    notes: str = ""
    validate: object = None
    verify_points: tuple = ({},)
    headline: tuple = ()
    warm: dict = field(default_factory=dict)
    subclaim: object = None
    quick: object = None
    p_grid: tuple = ()
    runs_param: str = ""
    kernels: tuple = ()
    gated: bool = True
    self_tests: bool = True
    subclaims: tuple = ()

    def __post_init__(self):
        if self.subclaim is None and any(s.subclaim for s in self.checks):
            object.__setattr__(self, "subclaim", by_facts(self.claim_id, self.checks))

    def tests(self):
        """The sub-claims this experiment's checks may test (``subclaims``, or its ``claim_id``)."""
        return self.subclaims or (self.claim_id,)

    def param(self, name):
        for q in self.params:
            if q.name == name:
                return q
        raise ParameterError(f"unknown parameter {shown(name)} for experiment {self.name}"
                             f"{suggest(name, [q.name for q in self.params])}; "
                             f"valid: {', '.join(q.name for q in self.params)}")

    def keyed(self, values):
        """The parameters of ``values`` that enter the streams' key (see :attr:`Param.keyed`)."""
        return {k: v for k, v in values.items() if self.param(k).keyed}

    def resolve(self, settings=None):
        """Defaults overridden by ``settings`` (name → text or value), validated."""
        values = {q.name: q.default for q in self.params}
        for name, value in (settings or {}).items():
            values[name] = self.param(name).parse(value)
        if self.validate is not None:
            self.validate(values)
        return values


@dataclass
class Context:
    """What a running experiment needs from the orchestration."""

    experiment: str
    seed: int
    samples: int
    progress: object = None
    point: dict = field(default_factory=dict)

    def key(self, stream, **extra):
        """Key of the stream ``stream`` at this grid point (seed, experiment, stream, point)."""
        point = {**self.point, **extra}
        text = ";".join(f"{k}={point[k]!r}" for k in sorted(point))
        return stream_key(self.seed, self.experiment, stream, text)

    def bar(self, stream):
        """A progress callback for ``engine.run`` labelled with this stream."""
        if self.progress is None:
            return None
        label = f"{self.experiment} {stream}"

        def report(done, compiling=False):
            self.progress("compiling kernels (first run only)" if compiling else label, done, self.samples)
        return report

    def where(self, **extra):
        point = {**self.point, **extra}
        return f"{self.experiment} (" + ", ".join(f"{k}={v}" for k, v in point.items()) + ")"
