"""Greensite's spatiotemporal ("isotropy") method.

Greensite & Huiskamp (1998, IEEE TBME 45) and Greensite (2003): under the isotropy assumption
(the space–time covariance of the heart potentials separates), the temporal right singular vectors
of the body-surface data decouple the problem. With the thin SVD ``Y = U_y S_y V_yᵀ``::

    y_j = Y v_j = s_j u_j                      (j = 1 … k: leading temporal components)
    x_j = argmin ‖A x − y_j‖² + λ_j ‖R x‖²     (one Tikhonov problem per component, own λ_j)
    X   = Σ_j x_j v_jᵀ

Components beyond ``k`` are discarded (they carry mostly noise). With ``k = rank(Y)`` and one
shared λ this is *exactly* ordinary Tikhonov, because ``Y V_y V_yᵀ = Y`` and Tikhonov is linear
in the data: the method's only changes are the truncation and the per-component λ.

All components share one (G)SVD of ``(A, R)`` (:func:`~._tikhonov.factorize`); each λ_j is chosen
by a rule of :mod:`._lambda` on that component's own :func:`~._tikhonov.tikhonov_path` (vmapped).
A weak component has an L-curve without a clear corner, so the per-component L-curve can pick a
far too small λ_j: in ``experiments/noise_study.py`` (default phantom, 20 dB, 6 problems) it gave
RE 5.9 ± 8 where GCV gave 0.36 and the best λ 0.24. GCV is the default and the safer rule here.

Rank rules (:func:`greensite_rank`): an explicit ``k``; an energy fraction (smallest ``k`` with
``Σ_{j≤k} s_j² ≥ energy·Σ s_j²``); or, by default, the noise rule ``s_j > σ(√M + √T)`` — the
largest singular value of an ``M × T`` matrix of white noise of standard deviation σ is about
``σ(√M + √T)`` (Marchenko–Pastur edge), so components above it carry signal.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._lambda import LambdaChoice, select_lambda
from ._tikhonov import TikhonovFactor, _as_2d, default_lambdas, tikhonov_from_factor, tikhonov_path

__all__ = ["GreensiteResult", "temporal_components", "greensite_rank", "greensite"]


class GreensiteResult(NamedTuple):
    """Output of :func:`greensite`.

    Attributes:
        X: ``(N, T)`` solution.
        lams: ``(k,)`` λ of each kept component.
        index: ``(k,)`` grid index of each λ (``-1`` entries when one λ was given).
        curves: ``(k, L)`` the rule's criterion per component (empty ``(k, 0)`` when λ was given).
        singular_values: ``(r,)`` all temporal singular values of ``Y``.
        error: ``(k, L)`` per-component relative error vs the truth (BENCHMARK-ONLY) or ``None``.
    """

    X: jax.Array
    lams: jax.Array
    index: jax.Array
    curves: jax.Array
    singular_values: jax.Array
    error: jax.Array | None


def temporal_components(Y) -> tuple[jax.Array, jax.Array]:
    """Singular values ``s`` ``(r,)`` and temporal right singular vectors ``V`` ``(T, r)`` of ``Y``
    (``r = min(M, T)``), largest first."""
    Y, _ = _as_2d(Y)
    _, s, Vh = jnp.linalg.svd(Y, full_matrices=False)
    return s, Vh.T


def greensite_rank(singular_values, shape, *, k=None, energy=None, noise_std=None) -> int:
    """Number of temporal components to keep (module docstring).

    Args:
        singular_values: ``(r,)`` of ``Y``, descending. shape: ``(M, T)`` of ``Y``.
        k: explicit count (``1 ≤ k ≤ r``); takes precedence.
        energy: fraction in ``(0, 1]``: smallest ``k`` reaching it.
        noise_std: σ per data entry for the noise rule (used when ``k`` and ``energy`` are ``None``).

    Raises:
        ValueError: ``k`` out of range, ``energy`` outside ``(0, 1]``, or none of the three given.
    """
    s = np.asarray(singular_values, np.float64)
    r = s.shape[0]
    if k is not None:
        if not (isinstance(k, (int, np.integer)) and 1 <= k <= r):
            raise ValueError(f"k must be an integer in [1, {r}] (the rank of the SVD of Y); got {k!r}.")
        return int(k)
    if energy is not None:
        if not 0 < float(energy) <= 1:
            raise ValueError(f"energy must be a fraction in (0, 1]; got {energy!r}.")
        frac = np.cumsum(s**2) / np.sum(s**2)
        return int(min(r, np.searchsorted(frac, float(energy) * (1 - 1e-12)) + 1))
    if noise_std is None:
        raise ValueError("greensite_rank needs one of k=, energy= or noise_std=.")
    m, t = shape
    edge = float(noise_std) * (np.sqrt(m) + np.sqrt(t))
    return int(max(1, np.sum(s > edge)))


def greensite(
    Y, factor: TikhonovFactor, k: int, *, rule: str = "gcv", lambdas=None, lam=None, noise_std=None, tau=1.0,
    truth=None,
) -> GreensiteResult:
    """Greensite's method with the ``k`` leading temporal components (module docstring).

    Jittable with ``k`` and ``rule`` static.

    Args:
        Y: ``(M, T)`` data.
        factor: :func:`~._tikhonov.factorize` ``(A, R)`` (``R = None``: order 0).
        k: number of temporal components kept (e.g. from :func:`greensite_rank`).
        rule: λ rule of :data:`~._lambda.RULES` applied per component.
        lambdas: ``(L,)`` grid shared by all components; default :func:`~._tikhonov.default_lambdas`.
        lam: one λ for every component (skips the rule).
        noise_std, tau: for ``rule="discrepancy"`` (σ per data entry; ``None`` → estimated per component).
        truth: ``(N, T)`` ground truth (needed by ``rule="oracle"``; BENCHMARK-ONLY).

    Returns:
        :class:`GreensiteResult`.
    """
    Y, _ = _as_2d(Y)
    dtype = factor.c.dtype
    Y = Y.astype(dtype)
    s, V = temporal_components(Y)
    Vk = V[:, :k]
    Yk = Y @ Vk  # (M, k) projected components y_j = s_j u_j
    if lam is not None:
        Xk = tikhonov_from_factor(factor, Yk, lam)
        lams = jnp.full((k,), lam, dtype)
        return GreensiteResult(Xk @ Vk.T, lams, jnp.full((k,), -1), jnp.zeros((k, 0), dtype), s, None)
    lambdas = default_lambdas(factor) if lambdas is None else jnp.asarray(lambdas, dtype)
    Tk = None if truth is None else jnp.asarray(truth, dtype) @ Vk  # (N, k): truth per component
    kw = dict(noise_std=noise_std, tau=tau) if rule == "discrepancy" else {}

    def one(y, t):
        path = tikhonov_path(y[:, None], lambdas=lambdas, factor=factor, truth=None if t is None else t[:, None])
        ch: LambdaChoice = select_lambda(path, rule, **kw)
        return path.solution(ch.index)[:, 0], ch.lam, ch.index, ch.curve, path.error

    if Tk is None:
        Xk, lams, idx, curves, err = jax.vmap(lambda y: one(y, None), in_axes=1, out_axes=(1, 0, 0, 0, 0))(Yk)
    else:
        Xk, lams, idx, curves, err = jax.vmap(one, in_axes=(1, 1), out_axes=(1, 0, 0, 0, 0))(Yk, Tk)
    return GreensiteResult(Xk @ Vk.T, lams, idx, curves, s, err)

