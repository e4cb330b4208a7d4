"""The observation model: how a source model's body potentials ``A·u`` become the recorded ``Y``.

The physics-based methods reconstruct a normalised transmembrane potential ``u`` (rest 0, peak 1).
Recordings are in mV, from a transfer matrix whose scale depends on the tissue's conductivity and
the TMP's amplitude, referenced to a terminal of their own: ``Y ≈ g·A·u + b·1ᵀ`` with an unknown
gain ``g > 0`` and a per-lead offset ``b``. Given ``A·u`` both come in closed form (variable
projection): centring every lead in time removes ``b``, and ``g`` is then a scalar least-squares
fit. One function, :func:`project_gain_offset`, serves the pacing search's misfit (traced, per
candidate beat), shooting's residual and the fit of the chosen beat.

The gain is not allowed to change sign. With a transfer matrix whose rows sum to zero (an
equivalent-double-layer matrix, any mean-referenced one) ``A·(1 − u) = −A·u``: a free sign cannot
tell a beat from its complement, and on ECGSim's normal male the fit took the complement (gain
−1.5, activation times anti-correlated with the truth). A sign-flipped ``A`` is a convention to
fix at the source; the pacing search warns when no beat explains the data.

**Extracellular recordings** (``"extracellular"``, accepted by the methods' ``solve`` entries):
``A`` maps heart-surface *extracellular* potentials ``φ`` (a potential-based BEM, as for a sock
of electrograms) while ``u`` is a normalised TMP. At a surface electrode ``φ ≈ −g·u + c(t) + b``
(``g > 0``): the potential falls as the tissue under it depolarises (the intrinsic deflection),
on top of a far field common to every node at each instant and a per-node offset. So
``Y ≈ −g·A·u + (A·1)·c(t)ᵀ + b_Y·1ᵀ``. Projecting every frame orthogonally to ``A·1``
(:func:`without_common_mode`) removes ``c(t)`` exactly, and what is left is the
``"gain-offset"`` model of ``−Y``: one piece of code serves both. On the measured Utah sock beats
the gain-offset model took the complement (gain > 0 where ``φ`` falls as ``u`` rises; 7 of 17
beats had no positive gain at all).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = [
    "OBSERVATIONS", "RECORDING_OBSERVATIONS", "Observation", "project_gain_offset", "observed_residual", "relative_misfit",
    "misfit_scale", "fit_observation", "check_observation", "without_common_mode", "extracellular_observation",
    "reduce_observation", "NoPositiveGain",
]

#: ``"identity"``: ``Y = A·u`` (the data in the model's units); ``"gain-offset"``: ``Y = g·A·u + b``, ``g > 0``.
OBSERVATIONS = ("identity", "gain-offset")
#: What the methods' ``solve`` entries accept: :data:`OBSERVATIONS` and ``"extracellular"``
#: (``Y ≈ −g·A·u + (A·1)·c(t)ᵀ + b·1ᵀ``; module docstring), which they reduce to ``"gain-offset"``.
RECORDING_OBSERVATIONS = OBSERVATIONS + ("extracellular",)


class NoPositiveGain(ValueError):
    """No gain ``g > 0`` maps a beat's body potentials to the data (:func:`fit_observation`)."""


class Observation(NamedTuple):
    """``Y ≈ gain·A·u + offset[:, None]``; the identity by default."""

    gain: float = 1.0
    offset: np.ndarray | None = None  # (m,) per lead, or None (zero)

    def normalize(self, Y):
        """``Y`` in the model's units: ``(Y − offset) / gain``."""
        Y = jnp.asarray(Y)
        if self.offset is not None:
            Y = Y - jnp.asarray(self.offset, Y.dtype)[:, None]
        return Y / jnp.asarray(self.gain, Y.dtype)

    def diagnostics(self) -> dict:
        return {"observation_gain": float(self.gain),
                "observation_offset": None if self.offset is None else np.asarray(self.offset, np.float64).tolist()}


def project_gain_offset(Y, P):
    """``(residual, gain, offset)`` of the best ``Y ≈ gain·P + offset[:, None]`` with ``gain ≥ 0``
    (traceable).

    ``P`` ``(m, t)``: the model's body potentials ``A·u``. A ``P`` constant in time (no beat in
    the window) or anti-correlated with the data explains nothing: gain 0, the residual is ``Y``
    centred.
    """
    y_mean, p_mean = jnp.mean(Y, axis=1), jnp.mean(P, axis=1)
    Yc, Pc = Y - y_mean[:, None], P - p_mean[:, None]
    pp = jnp.sum(Pc * Pc)
    gain = jnp.maximum(jnp.where(pp > 0, jnp.sum(Yc * Pc) / jnp.where(pp > 0, pp, 1.0), 0.0), 0.0)
    return Yc - gain * Pc, gain, y_mean - gain * p_mean


def observed_residual(Y, P, kind: str = "identity"):
    """``P − Y`` for the identity; for ``"gain-offset"`` the residual after the best gain and
    offsets (:func:`project_gain_offset`), with the same sign. Traceable (``kind`` static)."""
    if kind == "gain-offset":
        return -project_gain_offset(Y, P)[0]
    return P - Y


def relative_misfit(Y, P, kind: str = "identity"):
    """``‖residual‖² / ‖Y‖²`` (``"gain-offset"``: over ``‖Y‖²`` with every lead centred in time,
    what the offsets leave to explain): 0 for a perfect fit, 1 for ``P = 0`` (or a beat that
    explains nothing)."""
    Y = jnp.asarray(Y)
    r = observed_residual(Y, jnp.asarray(P, Y.dtype), kind)
    return jnp.sum(r * r) / misfit_scale(Y, kind)


def misfit_scale(Y, kind: str = "identity"):
    """The denominator of :func:`relative_misfit`: ``‖Y‖²``, every lead centred for ``"gain-offset"``."""
    Y = jnp.asarray(Y)
    ref = Y - jnp.mean(Y, axis=1, keepdims=True) if kind == "gain-offset" else Y
    return jnp.sum(ref**2)


def fit_observation(Y, P, kind: str) -> Observation:
    """The :class:`Observation` of ``kind`` (:data:`OBSERVATIONS`) that best maps ``P = A·u`` to ``Y``."""
    check_observation(kind)
    if kind == "identity":
        return Observation()
    _, gain, offset = project_gain_offset(jnp.asarray(Y), jnp.asarray(P, jnp.asarray(Y).dtype))
    if not float(gain) > 0:
        raise NoPositiveGain(
            "no positive gain maps the beat's body potentials to the data (constant over the window, or "
            "anti-correlated: a transfer matrix of the opposite sign convention?)."
        )
    return Observation(float(gain), np.asarray(offset, np.float64))


def check_observation(kind) -> str:
    if kind not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {OBSERVATIONS}; got {kind!r}.")
    return kind


def _common_mode_direction(A):
    A = np.asarray(A, np.float64)
    a1 = A.sum(axis=1)
    norm = np.linalg.norm(a1)
    # ‖A·1‖ ≤ ‖A‖_F·√n; a mean-referenced A reaches that bound's rounding level only.
    if not norm > 1e-5 * np.linalg.norm(A) * np.sqrt(A.shape[1]):
        raise ValueError("observation='extracellular' needs A·1 ≠ 0 (a potential-based transfer matrix, where a potential "
                         "common to every heart node reaches the leads); this A maps a constant to zero: use 'gain-offset'.")
    return a1 / norm


def without_common_mode(Y, A):
    """``(Y', A')`` with the extracellular model on ``(Y, A)`` the ``"gain-offset"`` model on them:
    ``Y' = −P·Y``, ``A' = P·A``, ``P = I − â·âᵀ`` the projection of every frame orthogonally to
    ``â = A·1 / ‖A·1‖`` (which removes the common mode ``c(t)`` exactly). jax arrays out, in jax's
    working dtype (float32 unless ``jax_enable_x64``); ``Y`` and ``A`` themselves are not changed."""
    Y, A = jnp.asarray(Y), jnp.asarray(A)
    if Y.ndim != 2 or A.ndim != 2 or Y.shape[0] != A.shape[0]:
        raise ValueError(f"Y (leads, samples) and A (leads, heart nodes) must share their leads; got Y {Y.shape}, A {A.shape}.")
    a = jnp.asarray(_common_mode_direction(A), A.dtype)
    project = lambda X: X - a[:, None] * jnp.matmul(a[None, :], X, precision="highest")  # noqa: E731
    return -project(Y).astype(Y.dtype), project(A)


def extracellular_observation(Y, A, U, gain: float | None = None) -> dict:
    """The diagnostics of the extracellular fit of ``U`` to the user's ``Y``: ``observation_gain``
    (``−g``: negative, φ falls as u rises), ``observation_offset`` ``(m,)`` (per lead, with no
    component along ``A·1``) and ``observation_common_mode`` ``(t,)`` (``c(t)``, the far field of
    every heart node at each instant, in ``Y``'s units), so that
    ``Y ≈ gain·A·U + (A·1)·c(t)ᵀ + offset·1ᵀ``. ``gain``: the ``g`` a method fitted on
    :func:`without_common_mode`'s data (EAND-ARN fixes it at its start); default: fitted to ``U``."""
    Y64, A64, U64 = (np.asarray(x, np.float64) for x in (Y, A, U))
    a = _common_mode_direction(A64)
    a1 = A64.sum(axis=1)
    if gain is None:
        Yp, Ap = without_common_mode(Y64, A64)
        gain = fit_observation(Yp, np.asarray(Ap) @ U64, "gain-offset").gain
    rest = Y64 + gain * (A64 @ U64)  # the common mode and the offsets
    offset = rest.mean(axis=1)
    offset -= a * (a @ offset)
    common = (a1 @ (rest - offset[:, None])) / (a1 @ a1)
    return {"observation_gain": -float(gain), "observation_offset": offset.tolist(), "observation_common_mode": common.tolist()}


def reduce_observation(Y, A, observation):
    """``(Y, A, observation)`` as a method fits them: for ``"extracellular"``
    ``(−P·Y, P·A, "gain-offset")`` (:func:`without_common_mode`), any other of
    :data:`RECORDING_OBSERVATIONS` as given. ``ValueError`` for a name not among them."""
    if observation not in RECORDING_OBSERVATIONS:
        raise ValueError(f"observation must be one of {RECORDING_OBSERVATIONS}; got {observation!r}.")
    if observation != "extracellular":
        return Y, A, observation
    return (*without_common_mode(Y, A), "gain-offset")
