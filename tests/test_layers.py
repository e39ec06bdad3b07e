"""The package's layers, read from its imports: data flow one way, and no module imports itself back.

core → theory → data → nn → experiments → runs → present → audit → bench (→ cli.py). A module may import
its own layer and the layers below it, never one above; the package's ``__init__`` (the library's entry
point, ``from simulator import simulate``) is the only module that stands above every layer.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "simulator"
LAYERS = ("core", "theory", "data", "nn", "experiments", "runs", "present", "audit", "bench")


def _modules():
    """``{module name: (path, is_package)}`` of every module of the package."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("simulator",) + path.relative_to(ROOT).with_suffix("").parts
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


MODULES = _modules()


def _imports(name):
    """The package modules ``name`` imports (``from x import y`` counts y when y is a module)."""
    path, package = MODULES[name]
    here = name.split(".") if package else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = (here[: len(here) - node.level + 1] if node.level else [])
            target = ".".join(base + ([node.module] if node.module else []))
            if not target.startswith("simulator"):
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                out.add(full if full in MODULES else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("simulator"))
    return out - {name}


GRAPH = {name: _imports(name) for name in MODULES}


def layer(name):
    """The layer a module belongs to: the rank of the package under ``simulator`` it lives in."""
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else len(LAYERS)


def test_every_module_lives_in_a_layer():
    loose = [m for m in MODULES if m != "simulator" and m.split(".")[1] not in LAYERS]
    assert not loose, f"modules outside the layers {LAYERS}: {loose}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_from_a_layer_above(name):
    above = sorted(t for t in GRAPH[name] if layer(t) > layer(name))
    assert not above, f"{name} (layer {LAYERS[layer(name)] if layer(name) < len(LAYERS) else 'top'}) imports {above}"


def test_no_import_circles():
    """Depth-first search for a cycle in the module graph (package ``__init__`` imports included)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt not in MODULES:
                continue
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                # importing a submodule runs its package's __init__ first: that edge is not a circle
                if not all(b.startswith(a + ".") for a, b in zip(cycle, cycle[1:])):
                    raise AssertionError("import circle: " + " → ".join(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(MODULES):
        if name not in state:
            visit(name)


def test_the_check_can_fail():
    """An import from a layer above is seen (the check is not vacuous)."""
    assert layer("simulator.core.rng") < layer("simulator.runs.simulate")
    assert "simulator.core.params" in GRAPH["simulator.runs.simulate"]
