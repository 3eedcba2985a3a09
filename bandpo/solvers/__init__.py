"""Solvers for the Band interval: the mpmath oracle, CVXPY ground truth and the torch solver."""

from bandpo.solvers.oracle import OracleBand, oracle_band, oracle_band_detail, oracle_g

__all__ = ["OracleBand", "oracle_band", "oracle_band_detail", "oracle_g"]
