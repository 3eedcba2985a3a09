"""The SymPy theory layer: g_f, closed-form band ends, thresholds, limits, expansions, proofs.

    from bandpo.theory import derive
    rec = derive("chi2")
    rec.upper                      # 1 + sqrt(delta*(1 - p)/p)
    rec.thresholds[1].statement()  # 'upper end saturates (r+ = 1/p) iff p >= 1/(1 + delta)'
    rec.passed, rec.summary_row()
    print(rec.report())            # every claim with its status: proved / numerical / ...

Every claim is a :class:`Check`; "proved" means a symbolic residual reduced to exactly 0, and a
claim only checked at 50 digits is marked "numerical", never "proved".
"""

from bandpo.theory.checks import Check, check_zero
from bandpo.theory.closed_forms import ClosedForm
from bandpo.theory.derive import (
    Derivation,
    SummaryRow,
    derive,
    derive_all,
    summary_table,
)
from bandpo.theory.expansion import Expansion
from bandpo.theory.limits import Limit
from bandpo.theory.symbols import DELTA, P, R
from bandpo.theory.thresholds import Threshold

__all__ = [
    "DELTA",
    "Check",
    "ClosedForm",
    "Derivation",
    "Expansion",
    "Limit",
    "P",
    "R",
    "SummaryRow",
    "Threshold",
    "check_zero",
    "derive",
    "derive_all",
    "summary_table",
]
