"""ruff over the whole repository, with the settings of ruff.toml (line length 120)."""
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ruff():
    try:
        import ruff  # noqa: F401  (the PyPI package ships the binary)

        return [sys.executable, "-m", "ruff"]
    except ImportError:
        found = shutil.which("ruff")
        if found is None:
            pytest.skip("ruff is not installed (it comes with the 'test' extra)")
        return [found]


def test_ruff_finds_nothing():
    done = subprocess.run(_ruff() + ["check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_would_see_a_fault(tmp_path):
    """The check can fail: an unused import and an undefined name are reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\nprint(undefined_name)\n")
    done = subprocess.run(_ruff() + ["check", "--no-cache", "--output-format", "concise", "--config",
                                     str(ROOT / "ruff.toml"), str(bad)], capture_output=True, text=True)
    assert done.returncode == 1 and "F401" in done.stdout and "F821" in done.stdout
