"""Accuracy metrics for reconstructed heart potentials.

Conventions: potentials are ``(N, T)`` arrays (nodes × time samples), estimate first, truth
second. Every function is jittable (string/bool options are static Python values) and NaN-free
for constant signals, as documented per function. NaN/Inf in the inputs is never hidden: a
diverged estimate gives a NaN score, not merely a poor one.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .ep import activation_times

__all__ = [
    "relative_error",
    "mse",
    "correlation",
    "mean_correlation",
    "activation_times",
    "ActivationError",
    "activation_time_error",
]


def _pair(U_hat, U):
    U_hat, U = jnp.asarray(U_hat), jnp.asarray(U)
    if U_hat.shape != U.shape:
        raise ValueError(f"estimate has shape {U_hat.shape} but the truth has shape {U.shape}.")
    dt = jnp.result_type(U_hat, U, float)
    return U_hat.astype(dt), U.astype(dt)


def relative_error(U_hat, U) -> jax.Array:
    """``‖Û − U‖_F / ‖U‖_F`` over all entries (``inf`` if ``U`` is all zeros and ``Û ≠ U``)."""
    U_hat, U = _pair(U_hat, U)
    return jnp.linalg.norm(U_hat - U) / jnp.linalg.norm(U)


def mse(U_hat, U) -> jax.Array:
    """Mean squared error over all entries."""
    U_hat, U = _pair(U_hat, U)
    return jnp.mean((U_hat - U) ** 2)


def _axis(axis: str) -> int:
    if axis == "time":
        return -1  # per node: correlate the time courses
    if axis == "space":
        return 0  # per time sample: correlate the spatial maps
    raise ValueError(f"axis must be 'time' or 'space'; got {axis!r}.")


def _pearson(a, b, ax):
    finite = jnp.all(jnp.isfinite(a), axis=ax) & jnp.all(jnp.isfinite(b), axis=ax)
    a = a - jnp.mean(a, axis=ax, keepdims=True)
    b = b - jnp.mean(b, axis=ax, keepdims=True)
    num = jnp.sum(a * b, axis=ax)
    den = jnp.sqrt(jnp.sum(a**2, axis=ax) * jnp.sum(b**2, axis=ax))
    # A constant signal has no defined correlation; define it as 0 ("no linear agreement")
    # instead of NaN so averages stay finite. A signal holding NaN/Inf is not constant: it
    # gets NaN, so that a diverged estimate cannot pass for an uncorrelated one.
    ok = den > 0
    r = jnp.where(ok, num / jnp.where(ok, den, 1), 0.0)
    return jnp.where(finite, r, jnp.nan)


def correlation(U_hat, U, axis: str = "time") -> jax.Array:
    """Pearson correlation coefficients.

    ``axis="time"``: one coefficient per node, correlating the two time courses → ``(N,)``.
    ``axis="space"``: one per time sample, correlating the two spatial maps → ``(T,)``.
    If either signal is constant (and finite) along the axis the coefficient is defined as ``0``
    rather than NaN. If either signal contains NaN or Inf there, the coefficient is NaN.
    """
    U_hat, U = _pair(U_hat, U)
    return _pearson(U_hat, U, _axis(axis))


def mean_correlation(U_hat, U, axis: str = "time") -> jax.Array:
    """Mean of :func:`correlation` along the other axis (constant signals count as CC = 0).

    NaN if the estimate (or the truth) contains NaN or Inf anywhere: the NaN coefficients of
    those nodes/samples propagate into the mean instead of counting as CC = 0.
    """
    return jnp.mean(correlation(U_hat, U, axis))


class ActivationError(NamedTuple):
    """Activation-time agreement over the nodes that activate in the ground truth.

    Attributes:
        mae: mean absolute error of activation times (units of ``dt``); NaN if the estimate
            contains NaN/Inf.
        correlation: Pearson correlation of the two activation maps (0 if either is constant;
            NaN if the estimate contains NaN/Inf).
        n_nodes: number of nodes compared.
    """

    mae: jax.Array
    correlation: jax.Array
    n_nodes: jax.Array


def activation_time_error(U_hat, U, dt: float = 1.0, method: str = "threshold", threshold: float = 0.5, *, normalize: bool = True) -> ActivationError:
    """Compare activation maps of an estimate and the truth (see :func:`activation_times`).

    Only nodes that activate in the truth are compared; an estimate that never activates at such
    a node contributes the time ``T·dt``.

    If the estimate contains NaN or Inf anywhere, ``mae`` and ``correlation`` are NaN
    (``n_nodes`` is still the count of truth-activated nodes): :func:`activation_times` would
    read a non-finite node as "never activates" and give a finite, merely poor score to a
    diverged estimate.
    """
    U_hat, U = _pair(U_hat, U)
    diverged = ~jnp.all(jnp.isfinite(U_hat))
    t_hat = activation_times(U_hat, dt, method, threshold, normalize=normalize)
    t, mask = activation_times(U, dt, method, threshold, normalize=normalize, return_mask=True)
    w = mask.astype(t.dtype)
    n = jnp.sum(w)
    nn = jnp.maximum(n, 1)
    mae = jnp.sum(w * jnp.abs(t_hat - t)) / nn
    a = t_hat - jnp.sum(w * t_hat) / nn
    b = t - jnp.sum(w * t) / nn
    num = jnp.sum(w * a * b)
    den = jnp.sqrt(jnp.sum(w * a**2) * jnp.sum(w * b**2))
    cc = jnp.where(den > 0, num / jnp.where(den > 0, den, 1), 0.0)
    mae, cc = (jnp.where(diverged, jnp.nan, x) for x in (mae, cc))
    return ActivationError(mae, cc, n.astype(jnp.int32))
