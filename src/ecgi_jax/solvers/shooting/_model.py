"""The shooting model: beat parameters θ → the Aliev–Panfilov beat ``U(θ)`` → the residual.

The parametrisation and the reasons for forward mode are in :mod:`ecgi_jax.solvers.shooting._shooting`'s
docstring, beside the fit that uses them.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ...ep import APParams, APProblem, integrate
from ...forward import observed_residual

__all__ = ["ShootingConfig", "trajectory", "shoot", "residual", "misfit", "residual_and_jacobian", "parameter_bounds", "D_RANGE"]

_HI = jax.lax.Precision.HIGHEST
#: ``D`` is fitted within ``[D₀ / D_RANGE, D₀·D_RANGE]``. The box must not bind where the data are
#: not the model's: on measured Utah sock beats in physical units (development beats
#: qrs_21jun01_3 / _4 / _12, one AP unit = 10 ms) the fit sat at ``2·D₀`` on all three, at
#: ``4·D₀`` and near ``8·D₀`` on the two that ran, and inside ``16·D₀`` (D = 98 / 93 / 67) on all
#: three, the misfit falling 0.35 → 0.23 → 0.10 on one of them (the apparent epicardial spread
#: of a paced beat is faster than surface conduction: the wave also crosses the wall). Where
#: ``D`` stays inside the old box nothing changes (the fit clips, it does not rescale), and the
#: sub-steps, set for the box's fastest ``D``, were reaction-bound at every mesh tried. It was 2
#: before 2026-12-04 (RESULTS.md, ``utah_recordings_extracellular_wide_D``).
D_RANGE = 16.0


@dataclasses.dataclass(frozen=True)
class ShootingConfig:
    """Static (hashable) settings of the shooting model: they fix the compiled program.

    Attributes:
        n_samples: recorded samples ``t``.
        substeps: simulator sub-steps per sample interval (stable for ``2·D₀`` when ``fit_D``).
        pad: extra simulated samples, so that the onset can move ``pad·dt`` before the recording.
        fit_D, fit_a: whether ``log_D`` / ``logit_a`` are unknowns.
        checkpoint: ``jax.checkpoint`` each sample interval of the time loop (reverse mode then
            stores one state per sample instead of every sub-step's intermediates).
        scheme: the simulator's time stepping (``"heun"`` or ``"euler"``).
        observation: ``"identity"`` (``Y = A·U``) or ``"gain-offset"`` (``Y = g·A·U + b``, ``g``
            and ``b`` projected out of the residual in closed form: variable projection).
    """

    n_samples: int
    substeps: int
    pad: int = 20
    fit_D: bool = True
    fit_a: bool = False
    checkpoint: bool = True
    scheme: str = "heun"
    observation: str = "identity"

    @property
    def names(self) -> tuple[str, ...]:
        return ("cx", "cy", "cz", "log_width", "onset") + (("log_D",) if self.fit_D else ()) + (
            ("logit_a",) if self.fit_a else ()
        )

    @property
    def n_params(self) -> int:
        return len(self.names)


# ----------------------------------------------------------------------------------------------
# the forward model θ → U


def trajectory(laplacian, ap_params: APParams, u0, v0, dt, *, n_samples: int, substeps: int, checkpoint: bool = True, scheme: str = "heun"):
    """``(U, V)`` ``(n, n_samples)`` from ``(u0, v0)``: the simulator's integrator, one sample
    interval at a time.

    Each interval is :func:`ecgi_jax.ep.simulate`'s own jitted integrator over ``substeps``
    sub-steps (the model is autonomous, so chaining intervals reproduces one long run exactly).
    With ``checkpoint=True`` every interval is wrapped in ``jax.checkpoint``: reverse mode keeps
    only the ``n_samples`` states and recomputes one interval's sub-steps at a time (memory
    ``O(n·(t + substeps))`` instead of ``O(n·t·substeps)``, for about one extra forward pass).
    Traceable in every argument but the keywords (differentiate in ``ap_params``, ``u0``, ...).
    """

    def interval(state):
        u, v = state
        U, V = integrate(laplacian, ap_params, u, v, None, dt, n_samples=2, substeps=substeps, scheme=scheme)
        return U[:, 1], V[:, 1]

    if checkpoint:
        interval = jax.checkpoint(interval)

    def body(state, _):
        nxt = interval(state)
        return nxt, nxt

    _, (us, vs) = jax.lax.scan(body, (u0, v0), None, length=n_samples - 1)
    return jnp.concatenate([u0[:, None], us.T], axis=1), jnp.concatenate([v0[:, None], vs.T], axis=1)


def _unpack(theta, problem: APProblem, config: ShootingConfig):
    centre, width, onset = theta[:3], jnp.exp(theta[3]), theta[4]
    p = problem.ap_params
    i = 5
    if config.fit_D:
        p = dataclasses.replace(p, D=p.D * jnp.exp(theta[i]))
        i += 1
    if config.fit_a:
        a0 = jnp.asarray(problem.ap_params.a)
        p = dataclasses.replace(p, a=jax.nn.sigmoid(jnp.log(a0 / (1 - a0)) + theta[i]))
    return centre, width, onset, p


def _shift(X, onset, dt, n_out: int):
    """``X(t − onset)`` on ``t = 0, dt, …``: ``X`` ``(n, K)`` sampled at ``0, dt, …`` from the
    initial state; rest (zero) before it, the last sample after the end.

    Cubic (Catmull–Rom) interpolation between samples: continuously differentiable in ``onset``,
    so Gauss–Newton sees no kinks at sample boundaries (linear interpolation has one at each,
    where Levenberg–Marquardt stalls).
    """
    K = X.shape[1]
    rest = jnp.zeros_like(X[:, :1])
    Xp = jnp.concatenate([rest, rest, X, X[:, -1:], X[:, -1:]], axis=1)  # X[:, 0] at index 2
    pos = jnp.clip(jnp.arange(n_out, dtype=X.dtype) - onset / dt + 2.0, 1.0, float(K + 1))
    i = jnp.clip(jnp.floor(pos).astype(jnp.int32), 1, K + 1)
    f = (pos - i.astype(pos.dtype))[None, :]
    p0, p1, p2, p3 = Xp[:, i - 1], Xp[:, i], Xp[:, i + 1], Xp[:, i + 2]
    return p1 + 0.5 * f * (p2 - p0 + f * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + f * (3.0 * (p1 - p2) + p3 - p0)))


def shoot(theta, problem: APProblem, config: ShootingConfig):
    """The beat ``(U, V)`` ``(n, t)`` of parameters ``theta`` (see the module docstring)."""
    centre, width, onset, params = _unpack(theta, problem, config)
    d2 = jnp.sum((problem.vertices - centre[None, :]) ** 2, axis=1)
    u0 = jnp.exp(-0.5 * d2 / width**2)
    U, V = trajectory(
        problem.laplacian, params, u0, jnp.zeros_like(u0), problem.dt, n_samples=config.n_samples + config.pad,
        substeps=config.substeps, checkpoint=config.checkpoint, scheme=config.scheme,
    )
    return _shift(U, onset, problem.dt, config.n_samples), _shift(V, onset, problem.dt, config.n_samples)


def residual(theta, problem: APProblem, config: ShootingConfig):
    """``vec(A·U(θ) − Y)`` ``(m·t,)`` (after the best gain and offsets with
    ``config.observation="gain-offset"``)."""
    U, _ = shoot(theta, problem, config)
    return observed_residual(problem.Y, jnp.matmul(problem.A, U, precision=_HI), config.observation).ravel()


def misfit(theta, problem: APProblem, config: ShootingConfig):
    """``‖Y − A·U(θ)‖²_F`` — differentiate with ``jax.grad`` (reverse mode; set
    ``config.checkpoint`` to bound its memory)."""
    r = residual(theta, problem, config)
    return jnp.dot(r, r, precision=_HI)


def residual_and_jacobian(theta, problem: APProblem, config: ShootingConfig):
    """``(r, J)``: the residual ``(m·t,)`` and its Jacobian ``(m·t, p)`` by forward mode (one
    simulation carrying ``p`` tangents; the primal is computed once)."""
    eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
    fn = lambda e: jax.jvp(lambda th: residual(th, problem, config), (theta,), (e,))  # noqa: E731
    r, J = jax.vmap(fn, out_axes=(None, 1))(eye)
    return r, J


def parameter_bounds(vertices, spacing: float, config: ShootingConfig, dt: float):
    """Boxes ``(lower, upper)`` ``(p,)`` of θ: the centre within the heart's bounding box widened by
    5 spacings; width in [0.05, 10] mesh spacings; onset in [−pad·dt, (t−1)·dt/2]; log_D in
    ±log :data:`D_RANGE`; logit_a shift in ±1.5."""
    v = np.asarray(vertices, np.float64)
    lo = list(v.min(axis=0) - 5 * spacing) + [math.log(0.05 * spacing), -config.pad * dt]
    hi = list(v.max(axis=0) + 5 * spacing) + [math.log(10.0 * spacing), 0.5 * (config.n_samples - 1) * dt]
    if config.fit_D:
        lo.append(-math.log(D_RANGE))
        hi.append(math.log(D_RANGE))
    if config.fit_a:
        lo.append(-1.5)
        hi.append(1.5)
    return np.asarray(lo), np.asarray(hi)
