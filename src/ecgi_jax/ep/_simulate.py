"""Explicit simulation of the Aliev–Panfilov model on a mesh (``lax.scan`` over output samples)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._types import all_finite
from ..operators._sparse import SparseOperator
from ._aliev_panfilov import APParams, ap_rhs

__all__ = ["Stimulus", "stable_substeps", "simulate"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Stimulus:
    """A pacing current ``amplitude`` applied to nodes ``mask (n,)`` during
    ``[onset_k, onset_k + duration)`` for every onset in ``onsets (K,)`` (repeated pacing)."""

    mask: jax.Array
    onsets: jax.Array
    duration: float | jax.Array = 1.0
    amplitude: float | jax.Array = 1.0

    def current(self, t):
        on = jnp.any((t >= self.onsets) & (t < self.onsets + self.duration))
        return jnp.where(on, self.amplitude, 0.0) * self.mask


def _max_rate(laplacian, D) -> float:
    # Gershgorin bound of the spectral radius of D·L: 2·max_i |D_i L_ii| for rows summing to zero.
    if isinstance(laplacian, SparseOperator):
        diag = np.zeros(laplacian.shape[0])
        r, c, w = (np.asarray(a) for a in (laplacian.rows, laplacian.cols, laplacian.weights))
        np.add.at(diag, r[r == c], w[r == c])
    else:
        diag = np.diag(np.asarray(laplacian))
    return float(2.0 * np.max(np.abs(np.asarray(D) * diag)))


def stable_substeps(laplacian, params: APParams, dt: float, max_substep: float = 0.02) -> int:
    """Sub-steps per output interval for a stable, accurate explicit integration.

    The sub-step is at most ``max_substep`` (accuracy of the stiff reaction terms; 0.02 AP units
    is the P-DL data's convention) and at most 90 % of the diffusion stability limit
    ``2 / ρ(D·L)`` (Gershgorin bound).
    """
    limit = 0.9 * 2.0 / max(_max_rate(laplacian, params.D), 1e-30)
    return max(1, math.ceil(dt / min(max_substep, limit) - 1e-9))


SCHEMES = ("heun", "euler")


@partial(jax.jit, static_argnames=("n_samples", "substeps", "scheme"))
def _simulate(laplacian, params, u0, v0, stimulus, dt, *, n_samples, substeps, scheme):
    h = dt / substeps

    def rate(u, v, t):
        du, dv = ap_rhs(u, v, laplacian @ u, params)
        if stimulus is not None:
            du = du + stimulus.current(t)
        return du, dv

    def step(carry, _):
        u, v, t = carry
        du, dv = rate(u, v, t)
        if scheme == "euler":
            return (u + h * du, v + h * dv, t + h), None
        # Heun (explicit trapezoid): second order, so the wavefront speed converges as h².
        du2, dv2 = rate(u + h * du, v + h * dv, t + h)
        return (u + 0.5 * h * (du + du2), v + 0.5 * h * (dv + dv2), t + h), None

    def interval(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=substeps)
        return carry, carry[:2]

    t0 = jnp.zeros((), u0.dtype)
    _, (us, vs) = jax.lax.scan(interval, (u0, v0, t0), None, length=n_samples - 1)
    U = jnp.concatenate([u0[:, None], us.T], axis=1)
    V = jnp.concatenate([v0[:, None], vs.T], axis=1)
    return U, V


def simulate(
    laplacian,
    u0,
    v0=None,
    *,
    params: APParams = APParams(),
    dt: float = 0.1,
    n_samples: int = 661,
    substeps: int | None = None,
    stimulus: Stimulus | None = None,
    scheme: str = "heun",
):
    """Integrate the Aliev–Panfilov model and return ``(U, V)``, each ``(n, n_samples)``.

    Args:
        laplacian: the surface Laplacian, a :class:`~ecgi_jax.operators.SparseOperator` or a dense
            ``(n, n)`` array (units 1/mm² to go with ``D`` in mm²/AP time).
        u0: initial u ``(n,)`` — e.g. 1 at the pacing node(s), 0 elsewhere.
        v0: initial v ``(n,)`` (default zeros).
        params: :class:`APParams`.
        dt: spacing of the output samples (AP time units); sample ``j`` is at ``t = j·dt``.
        n_samples: number of output samples, the first being the initial state.
        substeps: forward-Euler steps per output interval. Default: :func:`stable_substeps`
            (sub-step ≤ 0.02 and within the diffusion stability limit). A value above the
            stability limit is used as given, with a warning.
        stimulus: optional pacing current (:class:`Stimulus`).
        scheme: ``"heun"`` (explicit second-order Runge–Kutta, default) or ``"euler"`` (forward
            Euler, first order: at the default sub-step its wavefronts run a few % off).

    Returns:
        ``(U, V)`` sampled on the output grid, in the dtype of ``u0``.

    The integration is one jitted ``lax.scan`` (outer: output samples; inner: sub-steps), with
    the Laplacian and parameters as arguments, so it vmaps over pacing sites or parameters and is
    differentiable (use ``jax.checkpoint`` for long horizons in reverse mode).
    """
    params.validate()
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}.")
    u0 = jnp.asarray(u0)
    if u0.ndim != 1 or not jnp.issubdtype(u0.dtype, jnp.floating):
        raise ValueError(f"u0 must be a 1-D floating array (n,); got shape {u0.shape}, dtype {u0.dtype}.")
    n = u0.shape[0]
    if tuple(laplacian.shape) != (n, n):
        raise ValueError(f"laplacian has shape {tuple(laplacian.shape)}; expected ({n}, {n}) for u0 of length {n}.")
    v0 = jnp.zeros_like(u0) if v0 is None else jnp.asarray(v0, u0.dtype)
    if v0.shape != u0.shape:
        raise ValueError(f"v0 has shape {v0.shape}; expected {u0.shape}.")
    if not (all_finite(u0) and all_finite(v0)):
        raise ValueError("u0/v0 contain NaN or Inf.")
    if not (np.ndim(dt) == 0 and float(dt) > 0 and np.isfinite(float(dt))):
        raise ValueError(f"dt must be positive and finite (output sample spacing); got {dt!r}.")
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2; got {n_samples!r}.")
    lap_values = laplacian.weights if isinstance(laplacian, SparseOperator) else laplacian
    if not all_finite(lap_values):
        raise ValueError("laplacian contains NaN or Inf entries; rebuild it from a valid mesh.")
    if stimulus is not None and tuple(jnp.shape(stimulus.mask)) != (n,):
        raise ValueError(f"stimulus.mask has shape {tuple(jnp.shape(stimulus.mask))}; expected ({n},) (one entry per node).")
    auto = stable_substeps(laplacian, params, dt)
    if substeps is None:
        substeps = auto
    elif not isinstance(substeps, (int, np.integer)) or substeps < 1:
        raise ValueError(f"substeps must be an integer >= 1; got {substeps!r}.")
    elif dt / substeps > 0.9 * 2.0 / max(_max_rate(laplacian, params.D), 1e-30):
        warnings.warn(
            f"substeps={substeps} gives a sub-step {dt / substeps:.3g} beyond the diffusion stability "
            f"limit of forward Euler; the run may blow up (stable choice: substeps >= {auto}).",
            stacklevel=2,
        )
    params = jax.tree.map(lambda x: jnp.asarray(x, u0.dtype), params)
    if isinstance(laplacian, SparseOperator):
        laplacian = laplacian.astype(u0.dtype)
    else:
        laplacian = jnp.asarray(laplacian, u0.dtype)
    return _simulate(
        laplacian, params, u0, v0, stimulus, jnp.asarray(dt, u0.dtype), n_samples=int(n_samples), substeps=int(substeps),
        scheme=scheme,
    )
