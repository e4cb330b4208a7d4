"""Ionic models other than Aliev–Panfilov, for ground truths the inverse does not assume.

A truth drawn from the model an inverse method assumes flatters that method (the *inverse
crime*). The models here produce normalised transmembrane potentials ``u`` (rest 0, excited ≈ 1)
in the same dimensionless time and length units as :class:`~ecgi_jax.ep.APParams` (mesh in mm),
with parameters **calibrated** so that their conduction velocity (CV) and action potential
duration (APD) lie within ±30 % of the reference Aliev–Panfilov model's, but with their own
upstroke, plateau and repolarisation shapes and their own gating dynamics.

Calibration (:func:`cable_properties`, checked by ``tests/test_ionic.py``): on a 1-D cable with
0.25 mm spacing, the reference AP model (``APParams()``) conducts at 5.1 mm per AP time unit and
its APD at 50 % repolarisation is 25 AP units (upstroke 10→90 % in 1.4). Each model below keeps
the time constants of its published parameter set in ms, converted to AP units by one time scale
(ms per AP unit) chosen to match the AP model's APD50, and a diffusion coefficient ``D`` chosen to
match its CV:

========================  ============  ==========  ================  ===========
model                     time scale    D (mm²/AP)  CV (mm/AP)         APD50 (AP)
========================  ============  ==========  ================  ===========
Aliev–Panfilov (ref.)     —             10          5.1               25
Mitchell–Schaeffer        10.3 ms/AP    2.15        5.1               25
Fenton–Karma (3V, MBR)    10.0 ms/AP    1.22        4.9               25
========================  ============  ==========  ================  ===========

The waveforms differ from AP's, which is the point: Mitchell–Schaeffer's upstroke is 3.5× faster
(10→90 % in 0.4 AP units against 1.4), it peaks at 0.94 and its plateau decays monotonically;
Fenton–Karma's upstroke is faster still (0.2) and its slow inward current lifts the plateau to
u ≈ 1.19 (the published parameter set's own overshoot), a gain the AP model cannot produce.
Fenton–Karma's front (upstroke × CV ≈ 1 mm) is narrower than a 3 mm mesh resolves: there the
discrete wave fails to propagate (propagation failure of sharp fronts on coarse grids), where
Mitchell–Schaeffer's (~2 mm) still conducts.

References: Mitchell C.C., Schaeffer D.G., "A two-current model for the dynamics of cardiac
membrane", Bull. Math. Biol. 65:767–793 (2003). Fenton F., Karma A., "Vortex dynamics in
three-dimensional continuous myocardium with fiber rotation", Chaos 8:20–47 (1998) (the modified
Beeler–Reuter parameter set, Table 1).
"""

from __future__ import annotations

import dataclasses
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ..operators import SparseOperator
from ._aliev_panfilov import APParams, ap_rhs
from ._simulate import _check_sign, _checked_substeps

__all__ = [
    "AlievPanfilov", "MitchellSchaeffer", "FentonKarma", "IONIC_MODELS", "simulate_ionic", "cable_properties", "time_scale",
]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AlievPanfilov:
    """The reference model behind the ionic-model interface (state ``(u, v)``)."""

    params: APParams = APParams()

    @property
    def D(self):
        return self.params.D

    max_substep = 0.02

    def rest(self, n, dtype):
        z = jnp.zeros(n, dtype)
        return (z, z)

    def excite(self, state, mask):
        u, v = state
        return (jnp.where(mask, 1.0, u), v)

    def rates(self, state, lap_u):
        return ap_rhs(state[0], state[1], lap_u, self.params)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MitchellSchaeffer:
    """Mitchell–Schaeffer (2003), state ``(u, h)``; time constants in AP units (module docstring).

        du/dt = D·Δu + h·u²(1−u)/tau_in − u/tau_out
        dh/dt = (1−h)/tau_open  if u < u_gate,   −h/tau_close  otherwise

    Defaults: the published set (tau_in 0.3, tau_out 6, tau_open 120, tau_close 150 ms,
    u_gate 0.13) divided by 10.3 ms per AP unit; ``D = 2.15`` mm²/AP unit.
    """

    tau_in: float | jax.Array = 0.3 / 10.3
    tau_out: float | jax.Array = 6.0 / 10.3
    tau_open: float | jax.Array = 120.0 / 10.3
    tau_close: float | jax.Array = 150.0 / 10.3
    u_gate: float | jax.Array = 0.13
    D: float | jax.Array = 2.15

    @property
    def max_substep(self) -> float:
        return 0.25 * float(self.tau_in)

    def rest(self, n, dtype):
        return (jnp.zeros(n, dtype), jnp.ones(n, dtype))

    def excite(self, state, mask):
        return (jnp.where(mask, 1.0, state[0]), state[1])

    def rates(self, state, lap_u):
        u, h = state
        du = self.D * lap_u + h * u**2 * (1.0 - u) / self.tau_in - u / self.tau_out
        dh = jnp.where(u < self.u_gate, (1.0 - h) / self.tau_open, -h / self.tau_close)
        return du, dh


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FentonKarma:
    """Fenton–Karma three-variable model (1998), state ``(u, v, w)``; the modified Beeler–Reuter
    set (times in ms) divided by 10.0 ms per AP unit; ``D = 1.22`` mm²/AP unit.

        du/dt = D·Δu − (J_fi + J_so + J_si)
        J_fi = −v·H(u−u_c)(1−u)(u−u_c)/tau_d,   J_so = u(1−H(u−u_c))/tau_0 + H(u−u_c)/tau_r,
        J_si = −w(1 + tanh(k(u−u_csi)))/(2 tau_si)
        dv/dt = (1−H(u−u_c))(1−v)/tau_v_minus(u) − H(u−u_c)·v/tau_v_plus
        dw/dt = (1−H(u−u_c))(1−w)/tau_w_minus − H(u−u_c)·w/tau_w_plus
    with ``tau_v_minus = tau_v1_minus`` below ``u_v`` and ``tau_v2_minus`` above.
    """

    tau_v_plus: float | jax.Array = 3.33 / 10.0
    tau_v1_minus: float | jax.Array = 19.6 / 10.0
    tau_v2_minus: float | jax.Array = 1250.0 / 10.0
    tau_w_plus: float | jax.Array = 870.0 / 10.0
    tau_w_minus: float | jax.Array = 41.0 / 10.0
    tau_d: float | jax.Array = 0.25 / 10.0
    tau_0: float | jax.Array = 12.5 / 10.0
    tau_r: float | jax.Array = 33.33 / 10.0
    tau_si: float | jax.Array = 29.0 / 10.0
    k: float | jax.Array = 10.0
    u_csi: float | jax.Array = 0.85
    u_c: float | jax.Array = 0.13
    u_v: float | jax.Array = 0.04
    D: float | jax.Array = 1.22

    @property
    def max_substep(self) -> float:
        return 0.25 * float(self.tau_d)

    def rest(self, n, dtype):
        return (jnp.zeros(n, dtype), jnp.ones(n, dtype), jnp.ones(n, dtype))

    def excite(self, state, mask):
        return (jnp.where(mask, 1.0, state[0]),) + tuple(state[1:])

    def rates(self, state, lap_u):
        u, v, w = state
        H = (u >= self.u_c).astype(u.dtype)
        j_fi = -v * H * (1.0 - u) * (u - self.u_c) / self.tau_d
        j_so = u * (1.0 - H) / self.tau_0 + H / self.tau_r
        j_si = -w * (1.0 + jnp.tanh(self.k * (u - self.u_csi))) / (2.0 * self.tau_si)
        tau_v_minus = jnp.where(u < self.u_v, self.tau_v1_minus, self.tau_v2_minus)
        dv = (1.0 - H) * (1.0 - v) / tau_v_minus - H * v / self.tau_v_plus
        dw = (1.0 - H) * (1.0 - w) / self.tau_w_minus - H * w / self.tau_w_plus
        return self.D * lap_u - (j_fi + j_so + j_si), dv, dw


#: Model names accepted by :func:`ecgi_jax.noncrime.make_noncrime_case` and the study.
IONIC_MODELS = {"aliev-panfilov": AlievPanfilov, "mitchell-schaeffer": MitchellSchaeffer, "fenton-karma": FentonKarma}


@partial(jax.jit, static_argnames=("n_samples", "substeps"))
def _integrate(model, laplacian, state0, dt, *, n_samples: int, substeps: int, stimulus_sample=None):
    """``stimulus_sample (n,)``: the sample at which each node is excited (0: in ``state0``
    already; -1: never). Sample k's stimulus is applied at the end of the interval before it
    (t = k·dt), so that sample k shows it, as sample 0 shows the stimulus at t = 0."""
    h = dt / substeps

    def rates(state):
        return model.rates(state, laplacian @ state[0])

    def step(state, _):
        # Heun (explicit trapezoid), as the AP simulator: second order in the sub-step.
        k1 = rates(state)
        pred = tuple(s + h * k for s, k in zip(state, k1))
        k2 = rates(pred)
        return tuple(s + 0.5 * h * (a + b) for s, a, b in zip(state, k1, k2)), None

    def interval(state, j):
        state, _ = jax.lax.scan(step, state, None, length=substeps)
        if stimulus_sample is not None:
            state = model.excite(state, stimulus_sample == j + 1)
        return state, state[0]

    _, us = jax.lax.scan(interval, state0, jnp.arange(n_samples - 1))
    return jnp.concatenate([state0[0][:, None], us.T], axis=1)


def _check_model(model) -> None:
    if not all(hasattr(model, a) for a in ("rest", "excite", "rates", "D", "max_substep")):
        hint = f" (for a name, use IONIC_MODELS[{model!r}]())" if isinstance(model, str) and model in IONIC_MODELS else ""
        raise TypeError(
            f"model must be an ionic model instance ({', '.join(c.__name__ for c in IONIC_MODELS.values())}); "
            f"got {type(model).__name__} {model!r}{hint}."
        )


def simulate_ionic(
    model, laplacian, excited, *, dt: float = 0.1, n_samples: int = 400, substeps: int | None = None, onsets=None, dtype=None
):
    """Potentials ``U (n, n_samples)`` of a beat of ``model`` started at the ``excited`` nodes.

    Args:
        model: :class:`AlievPanfilov`, :class:`MitchellSchaeffer` or :class:`FentonKarma` (or any
            object with ``rest``, ``excite``, ``rates``, ``D`` and ``max_substep``).
        laplacian: ``(n, n)`` surface Laplacian (:class:`~ecgi_jax.operators.SparseOperator`,
            scipy.sparse or dense; 1/mm², non-positive diagonal).
        excited: boolean mask ``(n,)`` or integer indices of the nodes set to ``u = 1`` at t = 0.
        onsets: ``None`` (every excited node at t = 0), or each node's stimulus time ``(n,)`` in AP
            time units (used at the excited nodes only; rounded to the sample): a beat whose
            sites start one after another, as a normal beat's do through the Purkinje system.
        dt: output sample spacing (AP time units).
        substeps: Heun steps per sample; default the finest of the model's own accuracy limit
            (``max_substep``) and 90 % of the diffusion stability limit.

    Raises:
        ValueError: a Laplacian of the wrong shape, with a positive diagonal (the ``D − W``
            sign convention) or in the wrong units (the AP simulator's checks), no excited node,
            ``dt`` or ``n_samples`` out of range.
    """
    dtype = dtype or jnp.result_type(float)
    _check_model(model)
    n = laplacian.shape[0]
    if tuple(laplacian.shape) != (n, n):
        raise ValueError(f"laplacian must be square (n, n); got shape {tuple(laplacian.shape)}.")
    _check_sign(laplacian)
    mask = np.zeros(n, bool)
    excited = np.asarray(excited)
    if excited.dtype == bool:
        if excited.shape != (n,):
            raise ValueError(f"excited mask has shape {excited.shape}; expected ({n},).")
        mask = excited
    else:
        mask[excited.astype(np.int64)] = True
    if not mask.any():
        raise ValueError("excited selects no node: give at least one node to start the beat from.")
    if not (np.isfinite(dt) and dt > 0) or int(n_samples) < 2:
        raise ValueError(f"dt must be positive and n_samples >= 2; got dt={dt!r}, n_samples={n_samples!r}.")
    if substeps is None:
        # The AP simulator's rule and checks (units, sign), with the model's own reaction limit.
        substeps = _checked_substeps(laplacian, model, dt, model.max_substep)
    lap = laplacian.astype(dtype) if isinstance(laplacian, SparseOperator) else SparseOperator.from_scipy(sp.csr_matrix(laplacian), dtype)
    model = jax.tree.map(lambda x: jnp.asarray(x, dtype), model)
    stimulus = np.where(mask, 0, -1)
    if onsets is not None:
        onsets = np.asarray(onsets, np.float64)
        if onsets.shape != (n,) or not np.all(np.isfinite(onsets[mask])) or np.any(onsets[mask] < 0):
            raise ValueError(f"onsets must be ({n},) stimulus times >= 0 (AP units), finite at the excited nodes; "
                             f"got shape {onsets.shape}.")
        stimulus = np.where(mask, np.rint(np.where(mask, onsets, 0.0) / dt).astype(np.int64), -1)
        if np.any(stimulus >= int(n_samples)):  # a stimulus after the last sample would never fire
            raise ValueError(f"onsets must lie inside the simulated window: the latest, {float(np.max(onsets[mask])):g} (AP units), "
                             f"falls on sample {int(stimulus.max())}, past the last ({int(n_samples) - 1}, dt = {dt:g}): "
                             "raise n_samples or move it earlier.")
    state0 = model.excite(model.rest(n, dtype), jnp.asarray(stimulus == 0))
    return _integrate(model, lap, state0, jnp.asarray(dt, dtype), n_samples=int(n_samples), substeps=int(substeps),
                      stimulus_sample=None if onsets is None else jnp.asarray(stimulus, jnp.int32))


def cable_properties(model, *, spacing: float = 0.25, length: float = 100.0, dt: float = 0.1, n_samples: int = 800) -> dict:
    """Conduction velocity, APD and upstroke time of ``model`` on a uniform 1-D cable.

    The cable is paced at one end (first 2 mm excited); CV is measured between 30 % and 70 % of
    the length from the 50 % crossing times, APD50 (time from the upstroke's to the downstroke's
    50 % crossing) and the 10→90 % upstroke at the middle node. All in AP time units and mm.
    """
    _check_model(model)
    n = int(round(length / spacing)) + 1
    main = -2.0 * np.ones(n)
    main[[0, -1]] = -1.0  # no-flux ends
    lap = sp.diags([np.ones(n - 1), main, np.ones(n - 1)], [-1, 0, 1]) / spacing**2
    x = np.arange(n) * spacing
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unusual for a heart mesh", category=UserWarning)  # a fine cable on purpose
        U = np.asarray(simulate_ionic(model, lap.tocsr(), x <= 2.0, dt=dt, n_samples=n_samples,
                                      dtype=jnp.float64 if jax.config.jax_enable_x64 else None))
    t = np.arange(n_samples) * dt

    def first(mask):
        return t[np.argmax(mask)] if mask.any() else np.nan

    i1, i2, mid = int(0.3 * n), int(0.7 * n), n // 2
    cv = (x[i2] - x[i1]) / (first(U[i2] >= 0.5) - first(U[i1] >= 0.5))
    u = U[mid]
    up = int(np.argmax(u >= 0.5))
    down = up + int(np.argmax(u[up:] < 0.5)) if (u[up:] < 0.5).any() else None
    return {
        "cv": float(cv),
        "apd50": float((down - up) * dt) if down is not None else float("nan"),
        "upstroke": float(first(u >= 0.9) - first(u >= 0.1)),
        "peak": float(u.max()),
    }


def time_scale(*, apd50: float | None = None, conduction_velocity: float | None = None, ap_params: APParams = APParams()) -> float:
    """One Aliev–Panfilov time unit in the unit of a measurement: the ``time_scale`` of
    :meth:`~ecgi_jax.operators.HeartModel.from_mesh` for recordings in ms (or s).

    From a measured APD50 (say 250 ms) it is ``apd50 / APD50_AP`` (ms per AP unit), with the
    model's APD50 on a cable (:func:`cable_properties`); from a measured conduction velocity (say
    0.5 mm/ms) it is ``CV_AP / CV`` (the model's CV in mm per AP unit). The two agree only if the
    model's ``D`` suits the tissue; the APD read leaves ``D`` to set the speed, and is the one to
    prefer when activation times matter less than the waveform's length in the window. Give one.
    The cable's CV is that of a fine grid (0.25 mm): on a coarse heart mesh the discrete wave is
    slower, so a CV read there is an upper bound.
    """
    if (apd50 is None) == (conduction_velocity is None):
        raise ValueError("give exactly one of apd50 (a measured APD50, ms) or conduction_velocity (mm/ms).")
    value = apd50 if apd50 is not None else conduction_velocity
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (np.isfinite(value) and value > 0):
        raise ValueError(f"{'apd50' if apd50 is not None else 'conduction_velocity'} must be a positive number; got {value!r}.")
    props = cable_properties(AlievPanfilov(ap_params))
    if apd50 is not None:
        return float(apd50) / props["apd50"]
    return props["cv"] / float(conduction_velocity)
