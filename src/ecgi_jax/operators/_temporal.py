"""Finite-difference operators along the time axis.

One stencil table per (derivative, accuracy order) drives both the array form used inside jitted
losses (:func:`time_derivative`) and the matrix form used by classical solvers
(:func:`difference_matrix`), so the two can never disagree.

Central stencils in the interior (the 5-point stencil ``t−2 … t+2`` for first derivatives of
order 4), and one-sided stencils of the same accuracy order at the ends.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = ["Stencil", "fd_weights", "stencil", "time_derivative", "difference_matrix", "min_samples"]


def fd_weights(offsets, derivative: int) -> np.ndarray:
    """Finite-difference weights for ``f^(derivative)(0)`` from samples at integer ``offsets``.

    Solves the Vandermonde (Taylor) system ``Σ_k w_k o_k^p / p! = δ_{p,derivative}``; exact for
    polynomials of degree ``len(offsets) − 1``.
    """
    o = np.asarray(offsets, dtype=np.float64)
    if o.ndim != 1 or not np.isfinite(o).all():
        raise ValueError(f"offsets must be a finite 1-D array; got shape {o.shape}.")
    if len(np.unique(o)) != len(o):
        raise ValueError(f"offsets must be distinct (a repeated sample point makes the Taylor system singular); got {o.tolist()}.")
    if not (isinstance(derivative, (int, np.integer)) and 0 <= derivative < len(o)):
        raise ValueError(
            f"derivative must be an integer in [0, {len(o) - 1}] for {len(o)} offsets (need more points "
            f"than the derivative order); got {derivative!r}."
        )
    p = np.arange(len(o))
    vander = o[None, :] ** p[:, None]
    rhs = np.zeros(len(o))
    rhs[derivative] = float(np.prod(np.arange(1, derivative + 1)))
    return np.linalg.solve(vander, rhs)


class Stencil(NamedTuple):
    """Weights (for unit spacing) of a centred interior stencil and its one-sided end stencils."""

    derivative: int
    order: int
    offsets: np.ndarray  # (2r+1,) centred offsets -r..r
    weights: np.ndarray  # (2r+1,)
    left: np.ndarray  # (r, width): rows for samples 0..r-1, applied to x[..., :width]
    right: np.ndarray  # (r, width): rows for samples T-r..T-1, applied to x[..., -width:]

    @property
    def radius(self) -> int:
        return (len(self.offsets) - 1) // 2

    @property
    def width(self) -> int:
        return self.left.shape[1]


@functools.lru_cache(maxsize=None)
def stencil(derivative: int = 1, order: int = 4) -> Stencil:
    """Stencil of accuracy ``order`` (even, ≥ 2) for the ``derivative``-th time derivative (1 or 2)."""
    if derivative not in (1, 2):
        raise ValueError(f"derivative must be 1 or 2; got {derivative}.")
    if order < 2 or order % 2:
        raise ValueError(f"order must be an even integer >= 2; got {order}.")
    r = (derivative + order - 1) // 2
    offsets = np.arange(-r, r + 1)
    weights = fd_weights(offsets, derivative)
    width = derivative + order  # one-sided stencils need this many points for the same order
    left = np.stack([fd_weights(np.arange(width) - i, derivative) for i in range(r)])
    right = np.stack([fd_weights(np.arange(width) - (width - r + i), derivative) for i in range(r)])
    return Stencil(derivative, order, offsets, weights, left, right)


def min_samples(derivative: int = 1, order: int = 4) -> int:
    """Fewest time samples a stencil can act on."""
    return stencil(derivative, order).width


def time_derivative(x, dt, *, derivative: int = 1, order: int = 4, mode: str = "same"):
    """``∂^d x / ∂t^d`` along the last axis of ``x (..., T)`` with spacing ``dt``.

    Args:
        x: samples, time last.
        dt: sample spacing (positive; may be a traced scalar).
        derivative: 1 or 2.
        order: accuracy order of the stencil (2 → 3-point, 4 → 5-point ``t−2 … t+2``).
        mode: ``"same"`` returns ``T`` values using one-sided stencils at the ends;
            ``"valid"`` returns the ``T − 2r`` interior (centred) values only, e.g. for windows
            ``x[..., t−r : t+r+1]`` giving the derivative at their centre.

    Jittable and vmappable; dtype follows ``x``.
    """
    st = stencil(derivative, order)
    x = jnp.asarray(x)
    n_t = x.shape[-1]
    r = st.radius
    need = 2 * r + 1 if mode == "valid" else st.width
    if mode not in ("same", "valid"):
        raise ValueError(f"mode must be 'same' or 'valid'; got {mode!r}.")
    if n_t < need:
        raise ValueError(
            f"time_derivative (derivative={derivative}, order={order}, mode={mode!r}) needs at least "
            f"{need} time samples; got {n_t}. Use more samples or a lower order (order=2 needs "
            f"{min_samples(derivative, 2)})."
        )
    if isinstance(dt, (int, float)) and not (dt > 0 and np.isfinite(dt)):
        raise ValueError(f"dt must be positive and finite (sample spacing); got {dt}.")
    scale = 1.0 / jnp.asarray(dt, x.dtype) ** derivative
    interior = sum(
        float(w) * x[..., r + o : n_t - r + o] for o, w in zip(st.offsets, st.weights) if w != 0.0
    )
    if mode == "valid":
        return interior * scale
    left = x[..., : st.width] @ jnp.asarray(st.left.T, x.dtype)
    right = x[..., -st.width :] @ jnp.asarray(st.right.T, x.dtype)
    return jnp.concatenate([left, interior, right], axis=-1) * scale


def difference_matrix(n_samples: int, dt: float, *, derivative: int = 1, order: int = 4) -> np.ndarray:
    """The ``(T, T)`` matrix ``D`` with ``x @ D.T == time_derivative(x, dt, ...)`` (float64 numpy)."""
    st = stencil(derivative, order)
    if not isinstance(n_samples, (int, np.integer)):
        raise TypeError(f"n_samples must be an integer; got {type(n_samples).__name__}.")
    if n_samples < st.width:
        raise ValueError(
            f"difference_matrix (derivative={derivative}, order={order}) needs at least {st.width} "
            f"time samples; got {n_samples}. Use more samples or a lower order."
        )
    if not (dt > 0 and np.isfinite(dt)):
        raise ValueError(f"dt must be positive and finite (sample spacing); got {dt}.")
    r = st.radius
    d = np.zeros((n_samples, n_samples))
    for i in range(r, n_samples - r):
        d[i, i + st.offsets] = st.weights
    d[:r, : st.width] = st.left
    d[n_samples - r :, n_samples - st.width :] = st.right
    return d / dt**derivative
