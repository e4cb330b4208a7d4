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
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = ["OBSERVATIONS", "Observation", "project_gain_offset", "observed_residual", "relative_misfit", "misfit_scale", "fit_observation", "check_observation"]

#: ``"identity"``: ``Y = A·u`` (the data in the model's units); ``"gain-offset"``: ``Y = g·A·u + b``, ``g > 0``.
OBSERVATIONS = ("identity", "gain-offset")


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
        raise ValueError(
            "no positive gain maps the beat's body potentials to the data (constant over the window, or "
            "anti-correlated: a transfer matrix of the opposite sign convention?)."
        )
    return Observation(float(gain), np.asarray(offset, np.float64))


def check_observation(kind) -> str:
    if kind not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {OBSERVATIONS}; got {kind!r}.")
    return kind
