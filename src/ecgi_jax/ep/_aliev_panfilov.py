"""The Aliev–Panfilov (1996) two-variable model of cardiac excitation on a surface mesh.

    du/dt = D·Δu + k·u(1−u)(u−a) − u·v
    dv/dt = (e0 + mu1·v/(u+mu2))·(−v − k·u(u−a−1))

u is a normalised transmembrane potential (rest 0, excited ≈ 1), v a recovery variable, time in
dimensionless AP units. :func:`ap_rhs` is the single implementation of the right-hand side: the
simulator integrates it and the physics-informed losses evaluate it on network outputs.

Reference: Aliev R.R., Panfilov A.V., "A simple two-variable model of cardiac excitation",
Chaos, Solitons & Fractals 7(3):293–301 (1996).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..operators import time_derivative

__all__ = ["APParams", "ap_rhs", "ap_residual"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class APParams:
    """Aliev–Panfilov parameters (a pytree: vmap or differentiate over any of them).

    Defaults are the reference values used with the P-DL heart–torso data (mesh in mm, Δt = 0.1
    between samples): ``a=0.1, k=8, e0=0.002, mu1=0.3, mu2=0.3, D=10``. ``D`` may be a scalar or a
    per-node array ``(n,)`` (heterogeneous tissue, e.g. a slow scar).
    """

    a: float | jax.Array = 0.1
    k: float | jax.Array = 8.0
    e0: float | jax.Array = 0.002
    mu1: float | jax.Array = 0.3
    mu2: float | jax.Array = 0.3
    D: float | jax.Array = 10.0

    def validate(self) -> "APParams":
        """Raise ``ValueError`` for non-finite or out-of-range values.

        A host-side check: values that are tracers (inside ``jit``/``vmap``/``grad``) are skipped,
        so validated entry points stay traceable; validate concrete parameters before tracing.
        """
        for name in ("k", "e0", "mu1", "mu2", "D"):
            val = getattr(self, name)
            if isinstance(val, jax.core.Tracer):
                continue
            val = np.asarray(val)
            if not np.all(np.isfinite(val)) or not np.all(val > 0):
                raise ValueError(f"Aliev–Panfilov parameter {name} must be finite and positive; got {val}.")
        if not isinstance(self.a, jax.core.Tracer):
            a = np.asarray(self.a)
            if not np.all((a > 0) & (a < 1)):
                raise ValueError(f"Aliev–Panfilov parameter a (excitation threshold) must lie in (0, 1); got {a}.")
        return self


def ap_rhs(u, v, lap_u, ap_params: APParams):
    """Right-hand side ``(du/dt, dv/dt)`` given u, v and the surface Laplacian of u.

    Shapes broadcast: ``u``, ``v``, ``lap_u`` of ``(n,)`` or ``(n, t)``; a per-node ``D`` has shape
    ``(n,)`` and is broadcast over trailing axes.

    The v-equation is singular at ``u = −mu2``, which no physical state comes near (u stays
    ≥ ~0); its denominator ``u + mu2`` is floored at ``mu2/2`` so that fields far from physical —
    a randomly initialised network's — give a large but finite residual instead of ±inf. States
    with ``u > −mu2/2`` (every trajectory of the model) are untouched.
    """
    p = ap_params
    D = jnp.asarray(p.D)
    D = D.reshape(D.shape + (1,) * (jnp.ndim(u) - D.ndim)) if D.ndim else D
    du = D * lap_u + p.k * u * (1.0 - u) * (u - p.a) - u * v
    dv = (p.e0 + p.mu1 * v / jnp.maximum(u + p.mu2, 0.5 * p.mu2)) * (-v - p.k * u * (u - p.a - 1.0))
    return du, dv


def ap_residual(U, V, laplacian, ap_params: APParams, dt, *, stencil_order: int = 4, mode: str = "same"):
    """AP residuals ``(r_u, r_v)`` of trajectories ``U, V (n, t)`` by numerical differentiation.

    ``∂/∂t`` is the finite-difference stencil of accuracy ``stencil_order`` along time (5-point
    ``t−2 … t+2`` for 4) and ``Δ`` the mesh Laplacian ``laplacian`` (a
    :class:`~ecgi_jax.operators.SparseOperator` or a dense ``(n, n)`` array). With
    ``mode="valid"`` only the centred interior samples are returned (``t − 2r`` of them), e.g. for
    windows around chosen time centres. Zero (up to stencil error ``O(dt^stencil_order)``) on an exact AP
    trajectory. Jittable and vmappable.
    """
    du_dt = time_derivative(U, dt, order=stencil_order, mode=mode)
    dv_dt = time_derivative(V, dt, order=stencil_order, mode=mode)
    if mode == "valid":
        r = (U.shape[-1] - du_dt.shape[-1]) // 2
        U, V = U[..., r : U.shape[-1] - r], V[..., r : V.shape[-1] - r]
    fu, fv = ap_rhs(U, V, laplacian @ U, ap_params)
    return du_dt - fu, dv_dt - fv
