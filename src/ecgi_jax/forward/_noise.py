"""Measurement noise on body-surface potentials, with explicit PRNG keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._types import all_finite


def _check_signal(Y) -> jax.Array:
    Y = jnp.asarray(Y)
    if not jnp.issubdtype(Y.dtype, jnp.floating):
        raise TypeError(f"Y must be a floating array; got dtype {Y.dtype} (convert with Y.astype(float)).")
    if not all_finite(Y):
        raise ValueError("Y contains NaN or Inf values; noise is added to a finite clean signal only.")
    return Y


def _check_level(value: float, name: str) -> None:
    # Only checked when the value is concrete: under jit/vmap it is a tracer.
    if isinstance(value, (int, float)) and not (value >= 0.0 and value == value and value != float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")


def add_noise(key: jax.Array, Y: jax.Array, sigma: float) -> jax.Array:
    """Return ``Y + sigma * std(Y) * N(0, 1)``, the ECGI literature's convention.

    ``std(Y)`` is the standard deviation over all entries of the clean signal, so ``sigma``
    is a noise level relative to the signal's spread (0.1 means 10 %). Jittable and
    vmappable; ``Y`` is not modified.
    """
    _check_level(sigma, "sigma")
    Y = _check_signal(Y)
    return Y + sigma * jnp.std(Y) * jax.random.normal(key, Y.shape, Y.dtype)


def add_noise_snr(key: jax.Array, Y: jax.Array, snr_db: float) -> jax.Array:
    """Return ``Y`` plus white Gaussian noise at a signal-to-noise ratio of ``snr_db`` dB.

    SNR is the power ratio ``mean(Y**2) / noise_variance``, so 20 dB means a noise standard
    deviation of 0.1 times the signal's RMS value.
    """
    if isinstance(snr_db, (int, float)) and not (snr_db == snr_db and abs(snr_db) != float("inf")):
        raise ValueError(f"snr_db must be a finite number, got {snr_db!r}.")
    Y = _check_signal(Y)
    rms = jnp.sqrt(jnp.mean(Y**2))
    noise_std = rms * 10.0 ** (-jnp.asarray(snr_db, Y.dtype) / 20.0)
    return Y + noise_std * jax.random.normal(key, Y.shape, Y.dtype)


def correlated_noise(key: jax.Array, positions, n_samples: int, length: float, dtype=None) -> jax.Array:
    """Unit-variance noise ``(m, n_samples)``, white in time, correlated across the ``m`` leads at
    ``positions`` ``(m, 3)`` as ``exp(−d²/(2 length²))`` of their distance ``d`` (``length`` in the
    positions' unit; 0: white). Scale it by the noise level wanted: real body-surface noise
    (electrode contact, muscle, the reference) is shared by neighbouring leads, which white noise
    is not, and λ rules tuned on white noise can fail on it."""
    positions = np.asarray(positions, np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must be (m, 3) electrode coordinates; got shape {positions.shape}.")
    if not (np.isfinite(length) and length >= 0):
        raise ValueError(f"length must be a finite correlation length >= 0; got {length!r}.")
    dtype = dtype or jnp.result_type(float)
    z = jax.random.normal(key, (len(positions), int(n_samples)), dtype)
    if length <= 0:
        return z
    d2 = np.sum((positions[:, None] - positions[None]) ** 2, axis=-1)
    C = np.exp(-d2 / (2.0 * length**2))
    w, Q = np.linalg.eigh(C)
    root = (Q * np.sqrt(np.clip(w, 0, None))) @ Q.T
    root /= np.linalg.norm(root, axis=1, keepdims=True)  # unit variance per lead
    return jnp.asarray(root, dtype) @ z
