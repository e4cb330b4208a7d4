"""The physics-informed inverse-ECG loss: data fit + Aliev–Panfilov residual + Tikhonov terms.

One pure function, :func:`physics_loss`, jitted and differentiated by the trainer. The AP residual
uses :func:`ecgi_jax.ep.ap_residual` — the same right-hand side the simulator integrates — with
time derivatives either by the finite-difference stencil over neighbouring samples (EAND-ARN's
numerical differentiation) or by forward-mode autodiff through the network's time input
(P-DL's way; coordinate mode only).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ...ep import APProblem, ap_residual, ap_rhs
from ...operators import stencil
from ._fields import evaluate_fields, fields_and_time_derivatives

__all__ = ["TERMS", "physics_loss", "combine_terms", "without_reaction_discrepancy"]

#: Loss terms, in the order of weight vectors.
TERMS = ("data", "phys_u", "phys_v", "tik0", "tik2")

_HI = jax.lax.Precision.HIGHEST


def combine_terms(terms: jax.Array, weights: jax.Array, log_sigma: jax.Array | None):
    """Fixed weights ``Σ w_k L_k``, or learnable uncertainty weights
    ``Σ_k [L_k / σ_k² + log(1 + σ_k²)]`` over the terms with ``w_k > 0`` (P-DL's form)."""
    if log_sigma is None:
        return jnp.sum(weights * terms)
    s2 = jnp.exp(2.0 * log_sigma)
    active = weights > 0
    return jnp.sum(jnp.where(active, weights * terms / s2 + jnp.log1p(s2), 0.0))


def _powers(z, n: int) -> list:
    """``[1, z, z², ..., zⁿ]``."""
    out = [jnp.ones_like(z)]
    for _ in range(n):
        out.append(out[-1] * z)
    return out


def without_reaction_discrepancy(residuals, U, V, degree: int):
    """Each residual of ``residuals`` (arrays shaped like ``U``) less its least-squares fit by a
    polynomial ``P(u, v)`` of total degree ``degree`` (one polynomial per residual for the whole
    heart): the part of the AP residual that no change of the reaction term explains.

    Data from another ionic model leave the AP residual of a good map large and mostly a
    function of the state (Mitchell–Schaeffer truth, the template start: a quadratic in (u, v)
    explains 83 % of the u-residual); penalizing it pulls the map towards AP's waveform. Fitting
    the reaction's discrepancy in closed form (variable projection: its coefficients are
    the normal equations' solution at every evaluation, no parameters to learn) keeps what the
    physics says about space and time — a reaction–diffusion law with the model's ``D`` — and
    drops what it says about the waveform. The coefficients are held out of the gradient: at the
    least-squares optimum the loss is stationary in them, so the gradient is the same (the
    envelope theorem) without differentiating the solve.

    The basis is the monomials ``x^i y^j`` (``i + j ≤ degree``) of the standardized states (for
    the conditioning only: the span is the same). The normal equations are formed from the
    moments ``Σ x^p y^q`` (``p + q ≤ 2·degree``) and ``Σ x^i y^j r``: sums of elementwise products,
    which XLA fuses, instead of a (points × basis) matrix and its thin matrix products (whose
    shapes ran at a fraction of the matmul rate: the body-mode step on P-DL, 1094 × 661, was
    154 ms with the matrix form against 74 ms without the discrepancy).
    """
    sg = jax.lax.stop_gradient
    dtype = residuals[0].dtype
    x, y = (((z - sg(jnp.mean(z))) / sg(jnp.std(z) + 1e-6)).astype(dtype) for z in (U.ravel(), V.ravel()))
    basis = [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]
    xp, yp = _powers(x, 2 * degree), _powers(y, 2 * degree)
    moment = {(p, q): jnp.sum(sg(xp[p] * yp[q])) for p in range(2 * degree + 1) for q in range(2 * degree + 1 - p)}
    gram = jnp.stack([jnp.stack([moment[(i + k, j + l)] for k, l in basis]) for i, j in basis])
    rhs = jnp.stack([jnp.stack([jnp.sum(sg(xp[i] * yp[j]) * r.ravel()) for r in residuals]) for i, j in basis])
    ridge = 10 * jnp.finfo(gram.dtype).eps * jnp.trace(gram) / gram.shape[0]  # rounding level: conditioning only
    c = sg(jnp.linalg.solve(gram + ridge * jnp.eye(gram.shape[0], dtype=gram.dtype), rhs))
    return tuple(
        r - sum(c[b, k] * xp[i] * yp[j] for b, (i, j) in enumerate(basis)).reshape(r.shape)
        for k, r in enumerate(residuals)
    )


def physics_loss(
    net_params, graphdef, problem: APProblem, t_idx, *, mode: str, stencil_order: int, derivative: str,
    reaction_discrepancy: int = 0,
):
    """Loss terms ``(len(TERMS),)`` at the time samples ``t_idx``.

    ``reaction_discrepancy > 0``: both AP residuals less their best fit by a polynomial of that
    degree in (u, v) (:func:`without_reaction_discrepancy`); 0: the AP residuals themselves.

    ``t_idx`` is ``(t,)`` for the full batch (residual with one-sided stencils at the ends) or
    ``(b, 2r+1)`` windows of consecutive samples (residual at the window centres only; ``r`` the
    stencil radius). With ``derivative="autodiff"`` (coordinate mode), ``t_idx`` holds
    collocation samples ``(k,)`` and the residual is evaluated at each.
    """
    p = problem
    if derivative == "autodiff":
        U, V, dU, dV = fields_and_time_derivatives(graphdef, net_params, p.inputs, t_idx)
        fu, fv = ap_rhs(U, V, p.laplacian @ U, p.ap_params)
        ru, rv = dU - fu, dV - fv
        # P-DL fits the data on the whole grid every step; physics only at the collocation times.
        data_idx = jnp.arange(p.Y.shape[1])
        Uc, _ = evaluate_fields(graphdef, net_params, p.inputs, data_idx, "coordinate")
    elif t_idx.ndim == 1:
        U, V = evaluate_fields(graphdef, net_params, p.inputs, t_idx, mode)
        ru, rv = ap_residual(U, V, p.laplacian, p.ap_params, p.dt, stencil_order=stencil_order, mode="same")
        Uc, data_idx = U, t_idx
    else:
        U, V = evaluate_fields(graphdef, net_params, p.inputs, t_idx, mode)  # (n, b, w)
        ru, rv = ap_residual(U, V, p.laplacian, p.ap_params, p.dt, stencil_order=stencil_order, mode="valid")  # (n, b, 1)
        Uc = U.reshape(U.shape[0], -1)
        data_idx = t_idx.reshape(-1)
        r = stencil(1, stencil_order).radius  # the states where the residual is evaluated, as ap_residual trims them
        U, V = U[..., r : U.shape[-1] - r], V[..., r : V.shape[-1] - r]
    if reaction_discrepancy:
        ru, rv = without_reaction_discrepancy((ru, rv), U, V, reaction_discrepancy)
    Yd = p.Y[:, data_idx]
    misfit = jnp.matmul(p.A, Uc, precision=_HI) - Yd
    data = jnp.mean(misfit**2) / jnp.var(p.Y)
    lap_u = p.laplacian @ Uc
    return jnp.stack([data, jnp.mean(ru**2), jnp.mean(rv**2), jnp.mean(Uc**2), jnp.mean(lap_u**2)])
