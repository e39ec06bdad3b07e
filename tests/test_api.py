"""The public kernel API, read from the imports: a leading underscore means private to its module.

Every name one module (or a test, or ``cli.py``) takes from another module of the package is public: no
``from package.module import _name`` and no ``module._name`` across modules. And every function or class
used outside its module says what it does where it is defined (a docstring).
"""
import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ROOT = REPO / "simulator"


def _module_name(path):
    parts = ("simulator",) + path.relative_to(ROOT).with_suffix("").parts
    return (".".join(parts[:-1]), True) if parts[-1] == "__init__" else (".".join(parts), False)


MODULES = {_module_name(p)[0]: p for p in sorted(ROOT.rglob("*.py"))}
FILES = sorted(ROOT.rglob("*.py")) + sorted((REPO / "tests").rglob("*.py")) + [REPO / "cli.py"]


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def uses(path):
    """``[(line, module, name)]``: every package name ``path`` takes from a package module.

    ``from m import name`` (absolute or relative) gives ``(m, name)`` unless ``m.name`` is itself a
    module; an attribute ``alias.name`` on an alias bound to a package module gives ``(module, name)``.
    """
    here, package = _module_name(path) if ROOT in path.parents else ("", False)
    base = here.split(".") if package else here.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = ".".join((base[: len(base) - node.level + 1] if node.level else [])
                              + ([node.module] if node.module else []))
            if not target.startswith("simulator"):
                continue
            for a in node.names:
                full = f"{target}.{a.name}"
                if full in MODULES:
                    aliases[a.asname or a.name] = full
                else:
                    found.append((node.lineno, target, a.name))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("simulator") and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            target = aliases[node.value.id]
            if f"{target}.{node.attr}" not in MODULES:
                found.append((node.lineno, target, node.attr))
    return [(line, target, name) for line, target, name in found if target != here]


USES = {path: uses(path) for path in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_name_across_modules(path):
    bad = [f"line {line}: {target}.{name}" for line, target, name in USES[path] if _private(name)]
    assert not bad, f"{path.relative_to(REPO)} uses names private to other modules: {bad}"


def _definitions(module):
    """``{name: node}`` of the functions and classes defined at the top of ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def test_every_function_used_across_modules_has_a_docstring():
    defs = {m: _definitions(m) for m in MODULES}
    used = {(target, name) for found in USES.values() for _, target, name in found if target in MODULES}
    bare = sorted(f"{t}.{n}" for t, n in used if n in defs[t] and ast.get_docstring(defs[t][n]) is None)
    assert not bare, f"used outside their module without a docstring: {bare}"


def test_the_reader_sees_a_private_use():
    """The check can fail: a planted cross-module private import and attribute are both found."""
    planted = ROOT / "nn" / "_planted_for_test.py"
    planted.write_text("from ..core.rng import _ziggurat_tables\nfrom ..core import rng\nx = rng._hidden\n")
    try:
        name = _module_name(planted)[0]  # the planted module's dotted name
        MODULES[name] = planted
        found = {(t, n) for _, t, n in uses(planted) if _private(n)}
    finally:
        planted.unlink()
        MODULES.pop(name)
    assert found == {("simulator.core.rng", "_ziggurat_tables"), ("simulator.core.rng", "_hidden")}
