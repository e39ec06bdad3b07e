"""The README's audit examples run as written (from the repository's examples/ and the test extra's zoo) and
print what the README shows, digits aside (they move with the torch build in the last places)."""
import os
import re
import shlex
import shutil

import pytest
from conftest import require_torch

import cli

ROOT = os.path.join(os.path.dirname(__file__), "..")


def examples():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## Audit your own network", 1)[1].split("\n## ", 1)[0]
    found = []
    for block in re.findall(r"```\n(.*?)```", section, flags=re.S):
        lines = block.rstrip("\n").split("\n")
        if lines[0].startswith("$ python cli.py audit "):
            found.append((lines[0][len("$ python cli.py "):], lines[1:]))
    return found


def skeleton(lines):
    return [re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", line.rstrip()) for line in lines]


def test_readme_has_audit_examples():
    assert [c.split()[2] for c, _ in examples()] == ["examples/mynet.py:make", "torchvision.models:DenseNet"]


@pytest.mark.parametrize("command,expected", examples(), ids=lambda x: x.split()[2] if isinstance(x, str) else "")
def test_readme_audit_example(capsys, monkeypatch, tmp_path, command, expected):
    torch = require_torch()
    if "torchvision" in command and os.environ.get("CI", "").lower() != "true":
        pytest.importorskip("torchvision")
    shutil.copytree(os.path.join(ROOT, "examples"), tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        cli.main(shlex.split(command) + ["--no-progress"])
    except SystemExit as e:
        assert e.code == 0
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out.rstrip("\n").split("\n")
    assert skeleton(out) == skeleton(expected)
    if "--save" in command:
        assert (tmp_path / "fixed.pt").exists()
