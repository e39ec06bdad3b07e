"""The README stays true: its sample commands print exactly what the README shows."""
import os
import re
import shlex

import pytest

import cli

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def samples():
    """``(command, expected lines)`` of every code block of the "Sample output" section that starts with ``$``."""
    text = open(README, encoding="utf-8").read()
    section = text.split("## Sample output", 1)[1].split("\n## ", 1)[0]
    found = []
    for block in re.findall(r"```\n(.*?)```", section, flags=re.S):
        lines = block.rstrip("\n").split("\n")
        if lines[0].startswith("$ python cli.py "):
            found.append((lines[0][len("$ python cli.py "):], lines[1:]))
    return found


def test_readme_has_samples():
    assert len(samples()) >= 2


@pytest.mark.parametrize("command,expected", samples(), ids=lambda x: x if isinstance(x, str) else "")
def test_readme_sample_output_is_what_the_command_prints(capsys, command, expected):
    try:
        cli.main(shlex.split(command) + ["--no-progress"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert [line.rstrip() for line in out.rstrip("\n").split("\n")] == [line.rstrip() for line in expected]
