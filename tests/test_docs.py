"""Docstrings, comments and docs cite modules and names that exist: every ``simulator.…`` path imports."""
import importlib
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITED = re.compile(r"\bsimulator(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _sources():
    for folder in ("simulator", "tests", "docs"):
        for base, dirs, names in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in names:
                if name.endswith((".py", ".md")) and name != os.path.basename(__file__):  # not its own examples
                    yield os.path.join(base, name)
    yield os.path.join(ROOT, "README.md")
    yield os.path.join(ROOT, "cli.py")


def resolves(path):
    """Whether ``simulator.a.b.c`` is a module, or a name reachable from the longest module prefix."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_every_cited_simulator_path_imports():
    bad = set()
    for path in _sources():
        with open(path, encoding="utf-8") as f:
            for cited in CITED.findall(f.read()):
                if not resolves(cited.rstrip(".")):
                    bad.add((os.path.relpath(path, ROOT), cited))
    assert not bad, sorted(bad)


def test_the_check_sees_a_wrong_path():
    assert resolves("simulator.nn.batchnorm.running_weights")
    assert not resolves("simulator.batchnorm.running_weights") and not resolves("simulator.network")
