"""Activation-based inverse: activation times as the unknowns of a parametrised upstroke.

Each heart node ``i`` carries a transmembrane-like signal

    u_i(t) = 1/2 (1 + tanh((t - tau_i) / w)),

and the times ``tau`` minimise ``||Y - A U(tau)||_F^2 + lam ||L tau||^2`` (``L``: a surface
Laplacian, smooth activation maps). The residual is linear in ``U`` and ``U`` is separable in
``tau``, so the Gauss-Newton matrix is exact and cheap in closed form:

    J^T J = (A^T A) o (G G^T),   G_i(t) = du_i/dtau_i = -(1 / 2w) sech^2((t - tau_i) / w),

(``o``: elementwise product), and the gradient is ``-sum_t G o (A^T R)``. The solvers'
Levenberg-Marquardt (:func:`~ecgi_jax.solvers.levenberg_marquardt`: this ``N × N`` system only at
accepted points) runs ``max_iter`` iterations per stage, the damping carried from one stage to the
next. A continuation on the width
(``width_start`` -> ``width`` over ``stages`` geometric stages) keeps the non-convex fit out of the
flat tails of tanh at the start.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._levenberg_marquardt import levenberg_marquardt

__all__ = ["upstroke", "activation_cost", "gauss_newton_system", "fit_activation_times"]


def upstroke(tau, t, width):
    """``(N, T)`` upstrokes ``1/2 (1 + tanh((t - tau_i)/width))`` for times ``tau (N,)``."""
    return 0.5 * (1.0 + jnp.tanh((t[None, :] - tau[:, None]) / width))


def activation_cost(tau, Y, A, L, t, width, lam):
    """``||Y - A U(tau)||^2 + lam ||L tau||^2`` (the objective; differentiable)."""
    r = Y - jnp.matmul(A, upstroke(tau, t, width), precision="highest")
    return jnp.sum(r**2) + lam * jnp.sum(jnp.matmul(L, tau, precision="highest") ** 2)


def gauss_newton_system(tau, Y, A, t, width, lam, ata, ltl):
    """Half-gradient and Gauss-Newton matrix of :func:`activation_cost` in closed form.

    Returns ``(g, H)`` with ``g = grad(cost)/2`` and ``H = J^T J + lam L^T L`` (``J``: Jacobian
    of ``A U(tau)``), using ``ata = A^T A`` and ``ltl = L^T L``.
    """
    z = (t[None, :] - tau[:, None]) / width
    g_sig = -0.5 / width / jnp.cosh(z) ** 2  # dU/dtau, (N, T)
    r = Y - jnp.matmul(A, 0.5 * (1.0 + jnp.tanh(z)), precision="highest")
    grad = -jnp.sum(g_sig * jnp.matmul(A.T, r, precision="highest"), axis=1) + lam * jnp.matmul(ltl, tau, precision="highest")
    h = ata * jnp.matmul(g_sig, g_sig.T, precision="highest") + lam * ltl
    return grad, h


@functools.partial(jax.jit, static_argnames=("max_iter", "stages"))
def fit_activation_times(Y, A, L, t, tau0, width, width_start, lam, *, max_iter: int = 30, stages: int = 4):
    """Levenberg-Marquardt fit of the activation times (module docstring).

    Args:
        Y: ``(M, T)`` body-surface potentials. A: ``(M, N)`` transfer matrix.
        L: ``(K, N)`` regulariser on ``tau`` (dense). t: ``(T,)`` sample times.
        tau0: ``(N,)`` start. width: final upstroke width. width_start: first-stage width.
        lam: weight of ``||L tau||^2``.
        max_iter: LM iterations per stage (static). stages: width-continuation stages (static).

    Returns:
        ``(tau (N,), costs (stages,))``: the times and the final cost of every stage.
    """
    ata = jnp.matmul(A.T, A, precision="highest")
    ltl = jnp.matmul(L.T, L, precision="highest")
    ratio = (width / width_start) ** (1.0 / max(stages - 1, 1))
    tau, damping = tau0, jnp.asarray(1e-2, Y.dtype)
    costs = []
    for s in range(stages):
        w = width_start * ratio**s if stages > 1 else width
        fit = levenberg_marquardt(
            lambda x: activation_cost(x, Y, A, L, t, w, lam),  # noqa: B023  (called within the iteration)
            lambda x: gauss_newton_system(x, Y, A, t, w, lam, ata, ltl),  # noqa: B023
            tau, max_iter=max_iter, tol=0.0, lam0=damping, increase=4.0, damping_floor=1e-12,
        )
        tau, damping = fit.x, fit.lam
        costs.append(fit.cost)
    return tau, jnp.stack(costs)
