"""Activation times of potential traces: when each node's upstroke passes (threshold crossing or
steepest upstroke). Used by the solvers (start solutions, the shooting parametrisation) and by
the metrics (:func:`ecgi_jax.metrics.activation_time_error`)."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["activation_times"]


def activation_times(
    U,
    dt: float = 1.0,
    method: str = "threshold",
    threshold: float = 0.5,
    *,
    normalize: bool = True,
    return_mask: bool = False,
):
    """Activation time of every node of ``U`` ``(N, T)``, in the units of ``dt``.

    Methods:
        ``"threshold"``: first upward crossing of the level, linearly interpolated between the two
            samples around it. With ``normalize=True`` (default) the level is
            ``min + threshold·(max − min)`` of each node's own signal, so damped reconstructions
            are judged like the truth; with ``normalize=False`` it is ``threshold`` itself. A
            signal already at or above the level at sample 0 activates at time 0.
        ``"upstroke"``: time of the steepest upstroke, ``argmax du/dt`` (centred differences),
            refined to sub-sample accuracy by a parabola through the peak and its neighbours.

    Nodes that never activate (no crossing; a constant signal; for ``"upstroke"``, no positive
    slope) get the time ``T·dt`` — just past the recording — rather than NaN, so means stay
    finite; ``return_mask=True`` also returns the boolean ``(N,)`` mask of activated nodes so
    callers can exclude them.
    """
    U = jnp.asarray(U)
    if U.ndim != 2 or U.shape[-1] < 2:
        raise ValueError(f"U must be (N nodes, T samples) with T >= 2; got shape {U.shape}.")
    if isinstance(dt, (int, float)) and not (dt > 0 and dt != float("inf")):
        raise ValueError(f"dt must be positive and finite (sample spacing); got {dt}.")
    if normalize and isinstance(threshold, (int, float)) and not 0.0 < threshold < 1.0:
        raise ValueError(
            f"threshold is a fraction of each node's range with normalize=True and must lie in (0, 1); "
            f"got {threshold}. Pass normalize=False for an absolute level."
        )
    U = U.astype(jnp.result_type(U, float))
    n_t = U.shape[-1]
    dt = jnp.asarray(dt, U.dtype)
    never = n_t * dt
    if method == "threshold":
        lo, hi = jnp.min(U, axis=-1, keepdims=True), jnp.max(U, axis=-1, keepdims=True)
        level = lo + threshold * (hi - lo) if normalize else jnp.full_like(lo, threshold)
        above = U >= level
        if normalize:
            above = above & (hi > lo)  # a constant signal never activates
        first = jnp.argmax(above, axis=-1)  # first sample at/above the level (0 if none)
        activated = jnp.any(above, axis=-1)
        prev = jnp.maximum(first - 1, 0)
        u1 = jnp.take_along_axis(U, first[:, None], -1)[:, 0]
        u0 = jnp.take_along_axis(U, prev[:, None], -1)[:, 0]
        lv = level[:, 0]
        step = u1 - u0
        frac = jnp.where((first > 0) & (step > 0), (lv - u0) / jnp.where(step > 0, step, 1), 0.0)
        t = jnp.where(first > 0, (prev.astype(U.dtype) + jnp.clip(frac, 0.0, 1.0)) * dt, 0.0)
    elif method == "upstroke":
        du = jnp.gradient(U, axis=-1)
        k = jnp.argmax(du, axis=-1)
        peak = jnp.take_along_axis(du, k[:, None], -1)[:, 0]
        activated = peak > 0
        km, kp = jnp.clip(k - 1, 0, n_t - 1), jnp.clip(k + 1, 0, n_t - 1)
        fm = jnp.take_along_axis(du, km[:, None], -1)[:, 0]
        fp = jnp.take_along_axis(du, kp[:, None], -1)[:, 0]
        curv = fm - 2 * peak + fp
        inner = (k > 0) & (k < n_t - 1) & (curv < 0)
        shift = jnp.where(inner, 0.5 * (fm - fp) / jnp.where(inner, curv, -1), 0.0)
        t = (k.astype(U.dtype) + jnp.clip(shift, -0.5, 0.5)) * dt
    else:
        raise ValueError(f"method must be 'threshold' or 'upstroke'; got {method!r}.")
    t = jnp.where(activated, t, never)
    return (t, activated) if return_mask else t
