"""The one problem pytree of the physics-based inverse methods."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from ._aliev_panfilov import APParams

__all__ = ["APProblem"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class APProblem:
    """The data, operators and physics of one inverse problem ``Y ≈ A·u``, ``u`` an Aliev–Panfilov
    beat: what the shooting fit and the EAND-ARN loss pass into their jitted code. A pytree, so
    problems of equal shapes stack along a leading axis and ``jax.vmap`` runs them as one.

    Attributes:
        Y: ``(m, t)`` body potentials; A: ``(m, n)`` transfer matrix.
        laplacian: the heart Laplacian (:class:`~ecgi_jax.operators.SparseOperator` or dense).
        vertices: ``(n, 3)`` heart node coordinates (mm), or ``None`` where nothing needs them.
        ap_params: the :class:`APParams` of the physics (the reference values of fitted ones).
        dt: sample spacing (AP time units).
        inputs: what a method precomputes from the data for its jitted code (EAND-ARN's network
            inputs, :class:`~ecgi_jax.solvers.neural.FieldInputs`), or ``None``.
    """

    Y: jax.Array
    A: jax.Array
    laplacian: Any
    vertices: jax.Array | None
    ap_params: APParams
    dt: jax.Array
    inputs: Any = None
