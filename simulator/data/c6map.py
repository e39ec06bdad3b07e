"""The committed C6 regime map: the tidy table of ``cli.py map`` kept in the repository (``reports/c6-map``).

``verify`` and ``report`` read it instead of training the whole map again (about an hour on two cores);
``tests/test_regime_committed.py`` trains three of its cells again from their seed (one grown past its
pilot, its chunks pooled) and requires the same bits, so the committed numbers cannot drift from the code.
The folder lives in the repository, not in the installed package: from a clone (``pip install -e``) it is
found; elsewhere :func:`load` returns None and the commands say so.
"""
import functools
import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "reports" / "c6-map"
# The axes that name a series of the map's cells; along a series only the data size N changes.
SERIES = ("length", "task", "bn", "placement", "p")
# The map's equivalence margin: the accuracy drop below which dropout "does not hurt" classification (one point,
# the project's choice for the document's unquantified claim).
MARGIN = 0.01
FILE = FOLDER / "map.json"


@functools.lru_cache(maxsize=1)
def load():
    """The committed map (``map.json``: meta, sentences, table, crossovers, cells), or None when absent."""
    try:
        with open(FILE, encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("meta", {}).get("command") == "map" else None
