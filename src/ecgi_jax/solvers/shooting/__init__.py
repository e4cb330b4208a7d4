"""Inverse ECG by shooting through the differentiable Aliev–Panfilov simulator.

:func:`pacing_search` scans single-node pacing sites; :func:`shooting_fit` fits a few continuous
beat parameters (activation patch, onset, D) by Levenberg–Marquardt with a Laplace covariance.
The ``solve()`` methods ``"ap-shooting"`` and ``"hybrid"`` live in ``_methods``.
"""

from ._pacing import PacingSearch, farthest_point_sample, pacing_search
from ._shooting import (
    LMResult,
    ShootingConfig,
    ShootingFit,
    laplace_covariance,
    levenberg_marquardt,
    misfit,
    parameter_bounds,
    residual,
    residual_and_jacobian,
    shoot,
    shooting_fit,
    trajectory,
)

__all__ = [
    "PacingSearch", "farthest_point_sample", "pacing_search",
    "ShootingConfig", "LMResult", "ShootingFit", "trajectory", "shoot", "residual", "misfit",
    "residual_and_jacobian", "levenberg_marquardt", "laplace_covariance", "parameter_bounds", "shooting_fit",
]
