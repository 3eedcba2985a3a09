"""bandpo.testing: regression-test your own Band solver against bandpo's golden data.

A training framework computes the BandPO clipping band [r₋(p), r₊(p)] somewhere: a bisection in
the trainer, a lookup table, a fused kernel.  One line in its pytest suite checks it::

    from bandpo.testing import assert_solver

    def test_band_solver():
        assert_solver(my_trainer.band_bounds, divergence="kl", delta=[0.01, 0.05])

:func:`check_solver` returns a :class:`SolverReport` instead of raising: accuracy per p-decade
region and dtype, invariants (lower ≤ 1 ≤ upper, upper ≤ 1/p, monotone in p and δ, exact
saturation), feasibility g_f(p, bound) − δ at high precision, the extremes (p = 1, tiny p,
log p = −inf, NaN) and speed, with named findings for the defects it recognises.

References: the golden tables (:mod:`bandpo.golden`, the mpmath oracle at 50 digits) and
:func:`bandpo.solvers.oracle.oracle_band`; bars from :mod:`bandpo.tolerances`.
"""

from bandpo.testing.adapters import SolverAdapter, SolverCallError
from bandpo.testing.grids import REGIONS, Region
from bandpo.testing.report import (
    FINDING_CODES,
    CheckResult,
    Finding,
    PointError,
    RegionStats,
    SolverReport,
    SpeedResult,
)
from bandpo.testing.runner import assert_solver, check_solver
from bandpo.testing.transforms import cap_upper, chain, floor_lower, union_interval

__all__ = [
    "FINDING_CODES",
    "REGIONS",
    "CheckResult",
    "Finding",
    "PointError",
    "Region",
    "RegionStats",
    "SolverAdapter",
    "SolverCallError",
    "SolverReport",
    "SpeedResult",
    "assert_solver",
    "cap_upper",
    "chain",
    "check_solver",
    "floor_lower",
    "union_interval",
]
