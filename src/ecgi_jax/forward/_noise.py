"""Measurement noise on body-surface potentials, with explicit PRNG keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
