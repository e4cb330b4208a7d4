"""References of recordings: what a lead's potential is measured against.

Body-surface potentials are differences: against Wilson's central terminal (the mean of the
right-arm, left-arm and left-leg electrodes), against the mean of all leads, or against one lead.
A transfer matrix must be referenced the same way as the data it explains, and referencing both
with one function keeps them consistent: ``Y = A X`` implies ``Y_ref = A_ref X``.

Any such reference subtracts a combination of rows from every row, so a heart potential constant
in space produces no referenced signal at all (``A_ref · 1 = 0`` when ``A · 1 = 1``): the level of
the heart potentials becomes invisible, and the classical solvers take the zero-mean solution
(``solvers.classical.pin_constant_mode``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rereference"]


def rereference(A, Y=None, *, reference="mean"):
    """``A`` (and ``Y``) referenced to ``reference``: ``A_ref`` or ``(A_ref, Y_ref)``.

    Args:
        A: ``(m, n)`` transfer matrix (any prior reference: a new one replaces it).
        Y: optional ``(m, t)`` recordings of the same leads, given the same reference.
        reference: ``"mean"`` (the mean of all leads), a lead index (that lead becomes zero), or a
            sequence of lead indices whose mean is the reference (Wilson's central terminal:
            ``[right_arm, left_arm, left_leg]``).

    Raises:
        ValueError: ``A`` not 2-D, ``Y`` with another number of leads, an unknown reference name,
            lead indices out of range, repeated, boolean or empty.
    """
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] < 1:
        raise ValueError(f"A must be a 2-D (m leads, n heart nodes) matrix; got shape {A.shape}.")
    m = A.shape[0]
    if Y is not None:
        Y = np.asarray(Y)
        if Y.ndim != 2 or Y.shape[0] != m:
            raise ValueError(f"Y must be (m={m} leads, t samples), as A's rows; got shape {Y.shape}.")
    weights = _reference_weights(reference, m)
    A_ref = A - weights @ A
    return A_ref if Y is None else (A_ref, Y - weights @ Y)


def _reference_weights(reference, m: int) -> np.ndarray:
    """The ``(1, m)`` row of lead weights whose combination is the reference."""
    if isinstance(reference, str):
        if reference != "mean":
            raise ValueError(
                f"reference must be 'mean', a lead index or a sequence of lead indices (Wilson's central "
                f"terminal: [right_arm, left_arm, left_leg]); got {reference!r}."
            )
        return np.full((1, m), 1.0 / m)
    leads = np.atleast_1d(np.asarray(reference))
    if leads.dtype == bool or not np.issubdtype(leads.dtype, np.integer) or leads.ndim != 1 or leads.size == 0:
        raise ValueError(f"reference leads must be a non-empty list of integer lead indices; got {reference!r}.")
    if leads.min() < 0 or leads.max() >= m or len(set(leads.tolist())) != leads.size:
        raise ValueError(f"reference leads must be distinct indices in [0, {m - 1}]; got {leads.tolist()}.")
    w = np.zeros((1, m))
    w[0, leads] = 1.0 / leads.size
    return w
