"""optax under the package's dtype discipline."""

from __future__ import annotations

import jax

__all__ = ["optax_update"]


def optax_update(optimizer, *args, **kwargs):
    """``optimizer.update(*args, **kwargs)`` under standard dtype promotion.

    optax mixes Python floats with its int32 step counts (Adam's bias correction, schedules, the
    L-BFGS line search), which ``jax_numpy_dtype_promotion="strict"`` refuses. The package's own
    code runs under strict promotion in the tests; optax's update alone is let off, so a user who
    turns strict promotion on can still train.
    """
    with jax.numpy_dtype_promotion("standard"):
        return optimizer.update(*args, **kwargs)
