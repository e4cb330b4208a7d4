"""``solve()`` entry of the activation-based inverse: ``"activation-based"``."""

from __future__ import annotations

import jax.numpy as jnp

from ..._registry import Solution, register_method
from ...operators import as_dense
from ._activation_inverse import fit_activation_times, upstroke


def solve_activation_based(
    Y,
    A,
    *,
    laplacian=None,
    dt: float = 0.1,
    upstroke_width: float | None = None,
    upstroke_width_start: float | None = None,
    lam: float = 1e-3,
    tau0=None,
    max_iter: int = 30,
    stages: int = 4,
) -> Solution:
    """Activation times ``tau`` fitted by Levenberg-Marquardt with a tanh upstroke model.

    Minimises ``||Y - A U(tau)||^2 + lam ||L tau / dt||^2`` with
    ``U_i(t) = (1 + tanh((t - tau_i)/w))/2`` (see
    :mod:`ecgi_jax.solvers.activation._activation_inverse`). The fit runs in samples, so ``lam``
    weighs activation-time differences counted in samples and a change of time unit (``dt`` and
    the widths scaled together) leaves the fit unchanged.

    The model is a unit upstroke that never comes back down: pass the depolarization window only
    (the QRS). On a whole beat that also repolarizes (``experiments/noise_study.py``, P-DL, 66 AP
    time units) the fit failed (RE 1.15, activation-time error 43 units), and on body potentials
    of extracellular electrograms in mV (``experiments/utah_recordings.py``) no node activates.

    Options:
        laplacian: ``(N, N)`` operator (dense, scipy sparse or SparseOperator) for ``L``; ``None``:
            no spatial regularisation. dt: sample spacing (``t = dt * arange(T)``), in the time
            unit of the widths and of the returned activation times.
        upstroke_width: final upstroke width ``w`` (time units; default 3 samples, ``3·dt``).
        upstroke_width_start: first continuation width (default ``T·dt/8``, at least
            ``upstroke_width``). lam: weight of ``||L tau / dt||^2``.
        tau0: ``(N,)`` start times (default: the middle of the recording for every node).
        max_iter: LM iterations per continuation stage. stages: number of widths.

    Returns a :class:`Solution` with ``potentials = U(tau)`` ``(N, T)`` and diagnostics
    ``activation_times (N,)`` (time units), ``stage_costs``, ``misfit`` (``||Y - A U||^2 / ||Y||^2``).

    Raises ValueError for ``dt <= 0``, ``upstroke_width <= 0``, ``upstroke_width_start <
    upstroke_width``, ``lam < 0``, a ``tau0`` of the wrong shape, ``max_iter < 1`` or ``stages < 1``.
    """
    n, n_t = A.shape[1], Y.shape[1]
    dtype = jnp.result_type(Y, A, float)
    if not dt > 0:
        raise ValueError(f"option dt must be > 0 (the sample spacing); got {dt}.")
    width = 3.0 * dt if upstroke_width is None else upstroke_width
    if not width > 0:
        raise ValueError(f"option upstroke_width must be > 0; got {width}.")
    ws = max(n_t * dt / 8.0, width) if upstroke_width_start is None else upstroke_width_start
    if not ws >= width:
        raise ValueError(f"option upstroke_width_start ({ws}) must be >= upstroke_width ({width}).")
    if not lam >= 0:
        raise ValueError(f"option lam must be >= 0; got {lam}.")
    if int(max_iter) < 1 or int(stages) < 1:
        raise ValueError(f"max_iter and stages must be >= 1; got {max_iter}, {stages}.")
    L = jnp.zeros((1, n), dtype) if laplacian is None else jnp.asarray(as_dense(laplacian), dtype)
    samples = jnp.arange(n_t, dtype=dtype)
    if tau0 is None:
        start = jnp.full((n,), 0.5 * (n_t - 1), dtype)
    else:
        start = jnp.asarray(tau0, dtype) / dt
        if start.shape != (n,):
            raise ValueError(f"tau0 must have shape ({n},) (one time per heart node); got {start.shape}.")
    tau_samples, costs = fit_activation_times(
        Y, A, L, samples, start, jnp.asarray(width / dt, dtype), jnp.asarray(ws / dt, dtype), jnp.asarray(lam, dtype),
        max_iter=int(max_iter), stages=int(stages),
    )
    U = upstroke(tau_samples, samples, width / dt)
    misfit = jnp.sum((Y - jnp.matmul(A, U, precision="highest")) ** 2) / jnp.sum(Y**2)
    options = dict(laplacian=None if laplacian is None else "<given>", dt=dt, upstroke_width=width,
                   upstroke_width_start=ws, lam=lam, tau0=None if tau0 is None else "<given>", max_iter=max_iter,
                   stages=stages)
    diagnostics = dict(activation_times=tau_samples * dt, stage_costs=costs, misfit=misfit)
    return Solution(U, "activation-based", diagnostics, options)


register_method(
    "activation-based",
    solve_activation_based,
    "activation times as unknowns of a tanh upstroke, Levenberg-Marquardt with ||L tau||^2; give it the "
    "depolarization window only (it models no repolarization).",
)
