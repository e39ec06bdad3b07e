"""The audit's result: one row per BN layer (before and, after a fix, after it), the output effect, notes."""
from dataclasses import dataclass, field


@dataclass
class AuditResult:
    """What :func:`~simulator.audit.audit_model` and :func:`~simulator.audit.audit_arch` return.

    Attributes
    ----------
    rows : list of dict
        One per BN layer and stage (``"before"``, then ``"after"`` when a fix was
        applied), in the order the layers run.
    output : dict
        Stage → output effect (:func:`.measure.output_effect`), or None.
    meta : dict
        What was audited and how (model, data, batches, seed, the meaning of p).
    notes : list of str
        Lines the reader needs: approximations, what was skipped, what was written.
    """

    rows: list
    output: dict
    meta: dict
    notes: list = field(default_factory=list)

    def to_frame(self):
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def stage(self, name):
        """The rows of one stage."""
        return [r for r in self.rows if r["stage"] == name]
