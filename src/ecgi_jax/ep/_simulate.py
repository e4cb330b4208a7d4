"""Explicit simulation of the Aliev–Panfilov model on a mesh (``lax.scan`` over output samples)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from .._types import all_finite, is_concrete
from ..operators import PLAUSIBLE_SPACING_MM, SparseOperator
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


#: Most sub-steps per output sample that :func:`simulate` / :func:`stable_substeps` accept. Far
#: more than any millimetre mesh needs at ``dt = 0.1`` (the P-DL heart needs 5): a count above it
#: means a Laplacian in the wrong units (a mesh in metres asks for ~10⁵–10⁶), which would hang.
MAX_SUBSTEPS = 10_000

#: The default rule's longest sub-step (accuracy of the stiff reaction terms, AP time units).
MAX_SUBSTEP = 0.02

#: A sub-step longer than this many times :data:`MAX_SUBSTEP` gets a warning: the reaction terms
#: are then integrated inaccurately, and from a few times longer the explicit step can diverge
#: (a beat on a coarse mesh: finite at h = 0.5, Inf at h = 1).
REACTION_WARN_FACTOR = 10.0


def _diagonal(laplacian) -> np.ndarray:
    """The diagonal of a SparseOperator, a scipy.sparse matrix or a dense array (host, float64)."""
    if isinstance(laplacian, SparseOperator):
        diag = np.zeros(laplacian.shape[0])
        r, c, w = (np.asarray(a) for a in (laplacian.rows, laplacian.cols, laplacian.weights))
        np.add.at(diag, r[r == c], w[r == c])
        return diag
    if sp.issparse(laplacian):
        return np.asarray(laplacian.diagonal(), np.float64)
    return np.asarray(np.diag(np.asarray(laplacian)), np.float64)


def _row_sums(laplacian) -> np.ndarray:
    if isinstance(laplacian, SparseOperator):
        return np.bincount(np.asarray(laplacian.rows), weights=np.asarray(laplacian.weights, np.float64),
                           minlength=laplacian.shape[0])
    if sp.issparse(laplacian):
        return np.asarray(laplacian.sum(axis=1), np.float64).ravel()
    return np.asarray(laplacian, np.float64).sum(axis=1)


def _check_sign(laplacian) -> None:
    """Refuse a Laplacian with a positive diagonal (the ``D − W`` convention: anti-diffusion)."""
    diag = _diagonal(laplacian)
    if not np.any(diag > 0):
        return
    rows = _row_sums(laplacian)
    scale = max(float(np.max(np.abs(diag))), 1e-300)
    if np.all(diag >= 0) and np.all(np.abs(rows) <= 1e-4 * scale):
        raise ValueError(
            "laplacian has a positive diagonal and rows summing to zero: it is the graph Laplacian "
            "D - W (the convention of scipy.sparse.csgraph.laplacian and networkx), the negative of "
            "the surface Laplacian the AP model needs (W - D, negative semi-definite); with it the "
            "model would simulate anti-diffusion. Pass -laplacian (negate it)."
        )
    raise ValueError(
        f"laplacian has {int(np.sum(diag > 0))} positive diagonal entries: the AP model needs a "
        "negative semi-definite surface Laplacian (W - D, non-positive diagonal, rows summing to "
        "zero), e.g. operators.huiskamp_laplacian or operators.cotangent_laplacian; negate a "
        "'D - W' Laplacian."
    )



def _implied_spacing(laplacian) -> float | None:
    """Typical mesh spacing (in the mesh's length unit) implied by a Laplacian's diagonal.

    For a 1-ring Laplacian on a regular mesh of edge ``h`` (Huiskamp's or the cotangent one) the
    diagonal is ``≈ −4/h²``, so ``h ≈ 2/sqrt(median |L_ii|)``. ``None`` when the diagonal is zero.
    """
    diag = np.abs(_diagonal(laplacian))
    diag = diag[np.isfinite(diag) & (diag > 0)]
    if diag.size == 0:
        return None
    return float(2.0 / np.sqrt(np.median(diag)))


def _units_hint(laplacian) -> str:
    h = _implied_spacing(laplacian)
    if h is None:
        return "The Laplacian has a zero diagonal: it couples no node to its neighbours."
    hint = (
        "The Laplacian's scale (diagonal ~ -4/h^2 for a 1-ring Laplacian) implies a mesh spacing "
        f"of about {h:.3g} mm"
    )
    lo, hi = PLAUSIBLE_SPACING_MM
    if lo <= h <= hi:
        return hint + ", plausible for a heart mesh in millimetres."
    hint += (
        ", but the Aliev-Panfilov model (D in mm^2 per AP time unit) expects a heart mesh in "
        "millimetres (P-DL heart: ~6 mm)."
    )
    if h < lo:
        return hint + (
            " If the mesh is in metres or centimetres, scale its vertices to mm and rebuild the "
            "Laplacian (mesh.scaled(1000) for metres, mesh.scaled(10) for cm), or multiply a given "
            "Laplacian by 1e-6 (metres) or 1e-2 (cm)."
        )
    return hint + (
        " A spacing this coarse resolves no wavefront: check the mesh units (vertices in "
        "micrometres? scale them by 1e-3)."
    )


def _check_scale(laplacian) -> None:
    """Warn when the Laplacian implies a mesh spacing outside :data:`PLAUSIBLE_SPACING_MM`."""
    h = _implied_spacing(laplacian)
    lo, hi = PLAUSIBLE_SPACING_MM
    if h is not None and not lo <= h <= hi:
        warnings.warn(
            f"{_units_hint(laplacian)} (Spacings outside {lo}-{hi} mm are unusual for a heart mesh.)",
            UserWarning,
            stacklevel=4,  # user -> simulate / stable_substeps -> _checked_substeps -> here
        )


def _check_substep_count(count: int, laplacian, dt: float, *, requested: bool = False) -> None:
    """Refuse more than :data:`MAX_SUBSTEPS` sub-steps per output sample (a units slip would hang)."""
    if count <= MAX_SUBSTEPS:
        return
    h = _implied_spacing(laplacian)
    if h is not None and h < PLAUSIBLE_SPACING_MM[0]:
        fix = ""  # the hint says how to fix the units
    elif requested:
        fix = f"If the units are right, ask for fewer substeps (the default rule needs at most {MAX_SUBSTEPS})."
    else:
        fix = "If the units are right, use a shorter sample spacing dt (or a smaller D)."
    if requested:
        need = f"substeps={count} sub-steps per output sample (dt={dt:g}) is"
    else:
        need = f"the explicit AP integration would need {count} sub-steps per output sample (dt={dt:g}),"
    raise ValueError(
        f"{need} more than the limit of {MAX_SUBSTEPS}: the run would practically hang. "
        f"{_units_hint(laplacian)} {fix}".rstrip()
    )


def _max_rate(laplacian, D) -> float:
    # Gershgorin bound of the spectral radius of D·L: 2·max_i |D_i L_ii| for rows summing to zero.
    return float(2.0 * np.max(np.abs(np.asarray(D) * _diagonal(laplacian))))


def _diffusion_limit(laplacian, D) -> float:
    return 0.9 * 2.0 / max(_max_rate(laplacian, D), 1e-30)


def _required_substeps(laplacian, params: APParams, dt: float, max_substep: float = MAX_SUBSTEP) -> int:
    return max(1, math.ceil(dt / min(max_substep, _diffusion_limit(laplacian, params.D)) - 1e-9))


def _checked_substeps(laplacian, params: APParams, dt: float, max_substep: float = MAX_SUBSTEP) -> int:
    """:func:`stable_substeps` (the one host-side check shared with :func:`simulate`)."""
    _check_sign(laplacian)
    _check_scale(laplacian)
    count = _required_substeps(laplacian, params, dt, max_substep)
    _check_substep_count(count, laplacian, dt)
    return count


def stable_substeps(laplacian, ap_params: APParams, dt: float, max_substep: float = 0.02) -> int:
    """Sub-steps per output interval for a stable, accurate explicit integration.

    The sub-step is at most ``max_substep`` (accuracy of the stiff reaction terms; 0.02 AP units
    is the P-DL data's convention) and at most 90 % of the diffusion stability limit
    ``2 / ρ(D·L)`` (Gershgorin bound).

    Raises:
        ValueError: more than :data:`MAX_SUBSTEPS` sub-steps per sample would be needed — a
            Laplacian in the wrong units (mesh in metres: scale the vertices to mm); the message
            gives the mesh spacing the Laplacian implies. A Laplacian with a positive diagonal
            (the ``D − W`` convention of scipy.sparse.csgraph and networkx: negate it).

    Warns (``UserWarning``) when that implied spacing lies outside 0.3–20 mm.
    """
    return _checked_substeps(laplacian, ap_params, dt, max_substep)


SCHEMES = ("heun", "euler")


@partial(jax.jit, static_argnames=("n_samples", "substeps", "scheme"))
def integrate(laplacian, ap_params: APParams, u0, v0, stimulus, dt, *, n_samples: int, substeps: int, scheme: str = "heun"):
    """The AP trajectory ``(U, V)`` ``(n, n_samples)`` from ``(u0, v0)``: the traceable core of
    :func:`simulate`, without its host-side checks.

    Jitted; traceable (``jax.grad``, ``jax.jvp``, ``jax.vmap``) in ``laplacian``, ``ap_params``,
    ``u0``, ``v0``, ``stimulus`` and ``dt``; ``n_samples``, ``substeps`` and ``scheme`` are
    static. ``substeps`` explicit steps of ``dt / substeps`` per sample (Heun or forward Euler);
    nothing checks their stability here: take them from :func:`stable_substeps`, or call
    :func:`simulate`, which does. ``stimulus``: a :class:`Stimulus` or ``None``.
    """
    params = ap_params
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
    ap_params: APParams = APParams(),
    dt: float = 0.1,
    n_samples: int = 661,
    substeps: int | None = None,
    stimulus: Stimulus | None = None,
    scheme: str = "heun",
):
    """Integrate the Aliev–Panfilov model and return ``(U, V)``, each ``(n, n_samples)``.

    Args:
        laplacian: the surface Laplacian, a :class:`~ecgi_jax.operators.SparseOperator`, a
            scipy.sparse matrix (converted with ``SparseOperator.from_scipy``) or a dense
            ``(n, n)`` array (units 1/mm² to go with ``D`` in mm²/AP time), with the sign of Δ:
            non-positive diagonal, rows summing to zero (``W − D``; a ``D − W`` graph Laplacian
            is refused: negate it).
        u0: initial u ``(n,)`` — e.g. 1 at the pacing node(s), 0 elsewhere.
        v0: initial v ``(n,)`` (default zeros).
        ap_params: :class:`APParams`.
        dt: spacing of the output samples (AP time units); sample ``j`` is at ``t = j·dt``.
        n_samples: number of output samples, the first being the initial state.
        substeps: forward-Euler steps per output interval. Default: :func:`stable_substeps`
            (sub-step ≤ 0.02 and within the diffusion stability limit). A value above the
            stability limit is used as given, with a warning. More than :data:`MAX_SUBSTEPS`
            (requested or needed) is refused: it means a Laplacian in the wrong units. A sub-step
            over 10 × 0.02 (the reaction terms' accuracy limit) is warned about, and a run that
            diverges (NaN/Inf) raises instead of returning NaN.
        stimulus: optional pacing current (:class:`Stimulus`).
        scheme: ``"heun"`` (explicit second-order Runge–Kutta, default) or ``"euler"`` (forward
            Euler, first order: at the default sub-step its wavefronts run a few % off).

    Returns:
        ``(U, V)`` sampled on the output grid, in the dtype of ``u0``.

    Raises:
        ValueError: bad shapes or values, and a Laplacian whose scale implies a mesh in the wrong
            units (a mesh in metres needs ~10⁵ sub-steps per sample; the message gives the implied
            spacing and the fix); an integration that diverged (NaN/Inf: sub-step too long), with
            the sub-step count that is stable. A UserWarning flags an implied spacing outside
            0.3–20 mm and a sub-step beyond the diffusion or reaction limits.

    The integration is one jitted ``lax.scan`` (outer: output samples; inner: sub-steps), with
    the Laplacian and parameters as arguments, so it vmaps over pacing sites or parameters and is
    differentiable (use ``jax.checkpoint`` for long horizons in reverse mode). Traced over
    ``ap_params.D`` it needs ``substeps=`` (the number of steps is static and the rule needs a
    concrete D: take :func:`stable_substeps` of the largest D).
    """
    ap_params.validate()
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}.")
    u0 = jnp.asarray(u0)
    if u0.ndim != 1 or not jnp.issubdtype(u0.dtype, jnp.floating):
        raise ValueError(f"u0 must be a 1-D floating array (n,); got shape {u0.shape}, dtype {u0.dtype}.")
    n = u0.shape[0]
    if sp.issparse(laplacian):  # e.g. the P-DL .mat's Laplacian
        laplacian = SparseOperator.from_scipy(laplacian, u0.dtype)
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
    traced_D = not is_concrete(ap_params.D)
    if substeps is not None and (not isinstance(substeps, (int, np.integer)) or substeps < 1):
        raise ValueError(f"substeps must be an integer >= 1; got {substeps!r}.")
    if traced_D:
        # Under jax.vmap / jax.grad over D the sub-step rule has no value of D to work from, and
        # the number of steps must be static: the caller fixes it (for the largest D it traces).
        if substeps is None:
            raise ValueError(
                "simulate is being traced over ap_params.D (jax.vmap/jax.grad/jit): the sub-step rule needs a "
                "concrete D, so pass substeps= explicitly, e.g. stable_substeps(laplacian, APParams(D=D_max), dt)."
            )
        _check_sign(laplacian)
        _check_scale(laplacian)
        auto = int(substeps)
    else:
        auto = _checked_substeps(laplacian, ap_params, dt)  # refuses a Laplacian in the wrong units
    if substeps is None:
        substeps = auto
    else:
        _check_substep_count(int(substeps), laplacian, dt, requested=True)
    h = float(dt) / int(substeps)
    if not traced_D and h > _diffusion_limit(laplacian, ap_params.D):
        warnings.warn(
            f"substeps={substeps} gives a sub-step {h:.3g} beyond the diffusion stability "
            f"limit of forward Euler; the run may blow up (stable choice: substeps >= {auto}).",
            stacklevel=2,
        )
    if h > REACTION_WARN_FACTOR * MAX_SUBSTEP:
        warnings.warn(
            f"substeps={substeps} gives a sub-step {h:.3g}, more than {REACTION_WARN_FACTOR:g} times the "
            f"default rule's {MAX_SUBSTEP:g}: the stiff Aliev-Panfilov reaction terms are integrated "
            "inaccurately at that step and the explicit scheme may diverge even where diffusion is "
            f"stable (accurate choice: substeps >= {auto}).",
            stacklevel=2,
        )
    ap_params = jax.tree.map(lambda x: jnp.asarray(x, u0.dtype), ap_params)
    if isinstance(laplacian, SparseOperator):
        laplacian = laplacian.astype(u0.dtype)
    else:
        laplacian = jnp.asarray(laplacian, u0.dtype)
    U, V = integrate(
        laplacian, ap_params, u0, v0, stimulus, jnp.asarray(dt, u0.dtype), n_samples=int(n_samples), substeps=int(substeps),
        scheme=scheme,
    )
    if is_concrete(U) and not bool(jnp.all(jnp.isfinite(U)) & jnp.all(jnp.isfinite(V))):
        advice = (
            f"use substeps >= {auto} (the default rule: sub-step <= {float(dt) / auto:.3g})"
            if substeps < auto
            else "it diverged even at the default rule's sub-step: check the parameters, the "
            f"stimulus amplitude and the Laplacian, or try substeps >= {4 * int(substeps)}"
        )
        raise ValueError(
            f"the explicit integration diverged: sub-step h={h:.3g} (dt={float(dt):g}, "
            f"substeps={substeps}) gave NaN/Inf in U/V; {advice}."
        )
    return U, V
