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
from ._fields import evaluate_fields, fields_and_time_derivatives

__all__ = ["TERMS", "physics_loss", "combine_terms"]

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


def physics_loss(net_params, graphdef, problem: APProblem, t_idx, *, mode: str, stencil_order: int, derivative: str):
    """Loss terms ``(len(TERMS),)`` at the time samples ``t_idx``.

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
    Yd = p.Y[:, data_idx]
    misfit = jnp.matmul(p.A, Uc, precision=_HI) - Yd
    data = jnp.mean(misfit**2) / jnp.var(p.Y)
    lap_u = p.laplacian @ Uc
    return jnp.stack([data, jnp.mean(ru**2), jnp.mean(rv**2), jnp.mean(Uc**2), jnp.mean(lap_u**2)])
