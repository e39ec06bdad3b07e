"""Checkpoints: the finished pieces of a long run, so that a rerun resumes where it stopped.

One JSON line per piece, ``{"key": ..., "value": ...}``, appended as each piece
finishes. A line cut short by an interruption is ignored. Values go through
JSON on the way in as well, so a piece looks the same whether it was just
computed or read back.
"""
import json
import os


def key(**what):
    """A canonical text key for a piece of work."""
    return json.dumps(what, sort_keys=True, default=str)


class Checkpoint:
    """Finished pieces, kept in memory and, when ``path`` is given, in a JSON-lines file."""

    def __init__(self, path=None):
        self.path = path
        self.done = {}
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                        self.done[entry["key"]] = entry["value"]
                    except (ValueError, KeyError, TypeError):
                        continue

    def __contains__(self, k):
        return k in self.done

    def __getitem__(self, k):
        return self.done[k]

    def save(self, k, value):
        """Keep ``value`` under ``k``; returns it as read back from JSON."""
        text = json.dumps({"key": k, "value": value}, ensure_ascii=False)
        self.done[k] = json.loads(text)["value"]
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        return self.done[k]

    def remove(self):
        """Delete the file once the run's output is safely written."""
        if self.path and os.path.exists(self.path):
            os.remove(self.path)
