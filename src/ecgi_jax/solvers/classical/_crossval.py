"""λ by K-fold cross-validation over leads.

The leads (rows of ``A`` and ``Y``) are split into ``folds`` groups at random (fixed ``seed``). For
each group, Tikhonov solutions for the whole λ grid are computed from the *other* leads (one
(G)SVD of the kept rows of ``A`` per fold, :func:`~._tikhonov.tikhonov_path`), and used to predict
the left-out leads; the criterion is the prediction error summed over folds and time samples::

    CV(λ) = Σ_folds ‖A_out X_λ^(−fold) − Y_out‖_F²

and the chosen λ is the grid minimizer. Unlike GCV (its rotation-invariant limit, Golub, Heath &
Wahba 1979) it makes no assumption on the noise beyond independence between leads, and unlike the
discrepancy principle it needs no noise level. Cost: ``folds`` factorizations of
``((1 − 1/folds)·M, N)`` matrices. Caveat: neighbouring leads are strongly correlated, so with a
random split each left-out lead is predicted largely by interpolation between kept neighbours.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...operators import SparseOperator
from ._lambda import LambdaChoice
from ._tikhonov import _as_2d, _dtype, as_matrix, default_lambdas, factorize, tikhonov_path

__all__ = ["lead_folds", "crossval", "crossval_curve"]


def lead_folds(n_leads: int, folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Random partition of ``range(n_leads)`` into ``folds`` groups of (nearly) equal size.

    Raises:
        ValueError: ``folds`` not an integer in ``[2, n_leads]``.
    """
    if not isinstance(folds, (int, np.integer)) or not 2 <= folds <= n_leads:
        raise ValueError(f"folds must be an integer in [2, {n_leads}] (the number of leads); got {folds!r}.")
    perm = np.random.default_rng(seed).permutation(n_leads)
    return [np.sort(perm[i::folds]) for i in range(folds)]


@jax.jit
def _fold_error(Y_in, A_in, Y_out, A_out, R, lambdas):
    path = tikhonov_path(Y_in, lambdas=lambdas, factor=factorize(A_in, R))
    P = A_out @ path.factor.W  # (m_out, p): left-out leads in the solution basis

    def one(coef):
        return jnp.sum((P @ (coef[:, None] * path.beta) - Y_out) ** 2)

    return jax.lax.map(one, path.coef)


def crossval_curve(Y, A, R=None, lambdas=None, *, folds: int = 5, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """The CV criterion over a λ grid (module docstring).

    Args:
        Y: ``(M, T)`` data. A: ``(M, N)``. R: regularization operator or ``None`` (identity).
        lambdas: ``(L,)`` grid; default :func:`~._tikhonov.default_lambdas` of the full ``(A, R)``.
        folds: number of lead groups (2 ≤ folds ≤ M). seed: of the random split.

    Returns:
        ``(lambdas, cv)``: the grid and ``(L,)`` summed squared prediction errors.
    """
    Y, _ = _as_2d(Y)
    dtype = _dtype(Y, A)
    Y = jnp.asarray(Y, dtype)
    A = jnp.asarray(A, dtype)
    if Y.shape[0] != A.shape[0]:
        raise ValueError(f"Y has {Y.shape[0]} rows but A has {A.shape[0]}: both must have M rows (leads).")
    if isinstance(R, SparseOperator):
        R = R.astype(dtype)  # a pytree: passed to the jitted fold as it is
    elif R is not None:
        R = as_matrix(R, dtype)  # scipy sparse / array-like → dense
    if lambdas is None:
        lambdas = default_lambdas(factorize(A, R))
    lambdas = jnp.asarray(lambdas, dtype)
    groups = lead_folds(A.shape[0], folds, seed)
    cv = jnp.zeros(lambdas.shape, dtype)
    for out in groups:
        keep = np.setdiff1d(np.arange(A.shape[0]), out)
        cv = cv + _fold_error(Y[keep], A[keep], Y[out], A[out], R, lambdas)
    return lambdas, cv


def crossval(Y, A, R=None, lambdas=None, *, folds: int = 5, seed: int = 0) -> LambdaChoice:
    """λ minimizing the K-fold cross-validation error over leads (rule ``"cv"``).

    Arguments as :func:`crossval_curve`. Returns a :class:`~._lambda.LambdaChoice` whose ``index``
    refers to ``lambdas`` and whose ``curve`` is the CV error.
    """
    lambdas, cv = crossval_curve(Y, A, R, lambdas, folds=folds, seed=seed)
    idx = jnp.argmin(jnp.where(jnp.isfinite(cv), cv, jnp.inf))
    return LambdaChoice(lambdas[idx], idx, cv, "cv")
