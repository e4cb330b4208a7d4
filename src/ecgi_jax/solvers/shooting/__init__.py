"""Inverse ECG by shooting through the differentiable Aliev–Panfilov simulator.

:func:`pacing_search` scans single-node pacing sites; :func:`shooting_fit` fits a few continuous
beat parameters (activation patch, onset, D) by Levenberg–Marquardt with a Laplace covariance:
the model θ → U(θ) → residual in ``_model``, the fit in ``_shooting``.
The ``solve()`` methods ``"ap-shooting"`` and ``"hybrid"`` live in ``_methods``.
"""

from ._pacing import PacingSearch, farthest_point_sample, pacing_search
from ._model import ShootingConfig, misfit, parameter_bounds, residual, residual_and_jacobian, shoot, trajectory
from ._shooting import ShootingFit, fit_start, laplace_covariance, shooting_fit

__all__ = [
    "PacingSearch", "farthest_point_sample", "pacing_search",
    "ShootingConfig", "ShootingFit", "trajectory", "shoot", "residual", "misfit",
    "residual_and_jacobian", "fit_start", "laplace_covariance", "parameter_bounds", "shooting_fit",
]
