"""How a network becomes heart fields ``U, V (n, k)`` at chosen time samples.

Two input modes (EAND-ARN supports both; P-DL uses the coordinate mode):

* ``"body"`` — the network maps the body potentials at one time, ``y(t) ∈ R^m`` (scaled by
  their overall std), to the whole heart map ``(u(t), v(t)) ∈ R^{2n}``. One network call per time
  sample.
* ``"coordinate"`` — the network maps ``(x, y, z, t)`` scaled to ``[−1, 1]`` to ``(u, v)``. One call
  per node and time sample. Time derivatives can then also be taken by automatic differentiation
  (the P-DL way), used by the ablation and the P-DL baseline.
* ``"grid"`` — no network: the fields at every node and sample are free variables
  (:class:`~ecgi_jax.solvers.neural._networks.FreeGrid`), the reference parametrisation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ...operators import time_derivative

__all__ = ["FieldInputs", "make_inputs", "evaluate_fields", "fields_and_time_derivatives"]

MODES = ("body", "coordinate", "grid")


class FieldInputs(NamedTuple):
    """Network inputs for every time sample (a pytree passed into jitted code)."""

    body: jax.Array  # (t, m) scaled body potentials (body mode) — or (t, 0) unused
    coords: jax.Array  # (n, 3) node coordinates scaled to [-1, 1] (coordinate mode)
    times: jax.Array  # (t,) sample times scaled to [-1, 1]
    t_scale: jax.Array  # d(scaled time)/d(physical time)
    base_u: jax.Array  # (n, t) start fields the network corrects (zeros: the network alone)
    base_v: jax.Array  # (n, t)
    base_du: jax.Array  # (n, t) their time derivatives (used by the autodiff ablation only)
    base_dv: jax.Array  # (n, t)


def make_inputs(Y, vertices, dt, base_u=None, base_v=None) -> FieldInputs:
    """Scaled network inputs; ``base_u, base_v (n, t)`` are added to the network's output
    (residual learning on a start solution), zeros when not given."""
    Y = jnp.asarray(Y)
    n_t = Y.shape[1]
    n = vertices.shape[0]
    zeros = jnp.zeros((n, n_t), Y.dtype)
    base_u = zeros if base_u is None else jnp.asarray(base_u, Y.dtype)
    base_v = zeros if base_v is None else jnp.asarray(base_v, Y.dtype)
    # Stencil derivatives of the (fixed) start: only the network's part is differentiated by AD.
    base_du = time_derivative(base_u, dt, order=4)
    base_dv = time_derivative(base_v, dt, order=4)
    y_std = jnp.std(Y)
    body = (Y / jnp.where(y_std > 0, y_std, 1.0)).T
    v = jnp.asarray(vertices, Y.dtype)
    lo, hi = v.min(axis=0, keepdims=True), v.max(axis=0, keepdims=True)
    coords = 2.0 * (v - lo) / jnp.where(hi > lo, hi - lo, 1.0) - 1.0
    t_end = (n_t - 1) * dt
    times = 2.0 * jnp.arange(n_t, dtype=Y.dtype) * dt / t_end - 1.0
    return FieldInputs(body, coords, times, jnp.asarray(2.0 / t_end, Y.dtype), base_u, base_v, base_du, base_dv)


# Coordinate mode evaluates the network at nodes × samples points (723k on the P-DL heart). Done
# at once, every layer's activations for all of them go to memory and come back for the backward
# pass (6.4 GB moved per P-DL step, 0.7 GB of buffers); in chunks of ~2^15 points, each recomputed
# in the backward pass, they stay in cache and only the fields are stored: the P-DL step's loss
# and gradient took 1.7x less time and 26x less memory (2^13-2^16 points: 2^15 or 2^16 best).
_CHUNK_POINTS = 1 << 15


def _points(inputs: FieldInputs, idx):
    """Network inputs ``(n·k, 4)``: every node's scaled coordinates at each sample of ``idx (k,)``."""
    n, k = inputs.coords.shape[0], idx.size
    t = inputs.times[idx]
    x = jnp.concatenate(
        [jnp.broadcast_to(inputs.coords[:, None, :], (n, k, 3)), jnp.broadcast_to(t[None, :, None], (n, k, 1))], axis=-1
    )
    return x.reshape(-1, 4)


def _over_time_chunks(fields, idx, n_nodes: int):
    """``fields(idx) -> tuple of (n, k) arrays``, evaluated over chunks of ``idx (k,)`` of about
    :data:`_CHUNK_POINTS` points each (the last chunk padded with repeats, then trimmed), each chunk
    recomputed in the backward pass rather than stored."""
    k = idx.shape[0]
    n_chunks = -(-(k * n_nodes) // _CHUNK_POINTS)
    if n_chunks <= 1:
        return fields(idx)
    chunk = -(-k // n_chunks)
    padded = jnp.concatenate([idx, jnp.broadcast_to(idx[-1], (n_chunks * chunk - k,))]).reshape(n_chunks, chunk)
    chunks = jax.lax.map(jax.checkpoint(fields), padded)  # each (n_chunks, n, chunk)
    return tuple(jnp.moveaxis(c, 0, 1).reshape(c.shape[1], -1)[:, :k] for c in chunks)


def _apply(graphdef, params, x):
    # ``params`` is the tuple of states nnx.split produced (trainable params, fixed variables).
    return nnx.merge(graphdef, *params)(x)


def evaluate_fields(graphdef, params, inputs: FieldInputs, t_idx, mode: str):
    """``U, V`` of shape ``(n, k)`` at time samples ``t_idx (k,)`` (any integer array shape works
    for body mode; trailing axes are flattened and restored)."""
    shape = t_idx.shape
    flat = t_idx.reshape(-1)
    if mode == "grid":
        grid = nnx.merge(graphdef, *params)
        U, V = grid.U[...][:, flat], grid.V[...][:, flat]
    elif mode == "body":
        out = _apply(graphdef, params, inputs.body[flat])  # (k, 2n)
        n = out.shape[-1] // 2
        U, V = out[:, :n].T, out[:, n:].T
    else:
        n = inputs.coords.shape[0]

        def fields(idx):
            out = _apply(graphdef, params, _points(inputs, idx)).reshape(n, idx.size, 2)
            return out[..., 0], out[..., 1]

        U, V = _over_time_chunks(fields, flat, n)
    U = U + inputs.base_u[:, flat]
    V = V + inputs.base_v[:, flat]
    return U.reshape((U.shape[0],) + shape), V.reshape((V.shape[0],) + shape)


def fields_and_time_derivatives(graphdef, params, inputs: FieldInputs, t_idx):
    """Coordinate mode only: ``U, V, ∂U/∂t, ∂V/∂t`` at ``t_idx`` by forward-mode autodiff in t."""
    n = inputs.coords.shape[0]
    net = lambda z: _apply(graphdef, params, z)  # noqa: E731

    def fields_and_rates(idx):
        x = _points(inputs, idx)
        tangent = jnp.zeros_like(x).at[:, 3].set(inputs.t_scale)
        out, dout = jax.jvp(net, (x,), (tangent,))
        out, dout = out.reshape(n, idx.size, 2), dout.reshape(n, idx.size, 2)
        return out[..., 0], out[..., 1], dout[..., 0], dout[..., 1]

    f = t_idx.reshape(-1)
    U, V, dU, dV = _over_time_chunks(fields_and_rates, f, n)
    return U + inputs.base_u[:, f], V + inputs.base_v[:, f], dU + inputs.base_du[:, f], dV + inputs.base_dv[:, f]
