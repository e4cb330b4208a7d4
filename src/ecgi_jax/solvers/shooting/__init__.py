"""Inverse ECG by shooting through the differentiable Aliev–Panfilov simulator.

:func:`pacing_search` scans single-node pacing sites; :func:`shooting_fit` fits a few continuous
beat parameters (activation patch, onset, D) by Levenberg–Marquardt with a Laplace covariance.
The ``solve()`` methods ``"ap-shooting"`` and ``"hybrid"`` live in ``_methods``.
"""

from ._pacing import PacingSearch, farthest_point_sample, pacing_search
from ._shooting import (
    ShootingConfig,
    ShootingFit,
    laplace_covariance,
    fit_start,
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
    "ShootingConfig", "ShootingFit", "trajectory", "shoot", "residual", "misfit",
    "residual_and_jacobian", "fit_start", "laplace_covariance", "parameter_bounds", "shooting_fit",
]
