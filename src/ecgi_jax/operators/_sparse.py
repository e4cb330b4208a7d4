"""A sparse linear operator as an edge list, applied with ``segment_sum``.

Why an edge list and not ``jax.experimental.sparse``: it is a plain pytree of three arrays, so it is
passed to jitted functions as an argument (never closed over and constant-folded), it vmaps over a
batch of patients with the same sparsity size, its transpose for the backward pass is another
``segment_sum``, and it runs on every backend. The benchmark suite compares it with BCOO and dense.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

__all__ = ["SparseOperator", "as_dense"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SparseOperator:
    """``y[i] = sum_k weights[k] * x[cols[k]]`` over ``k`` with ``rows[k] == i``.

    Attributes:
        rows, cols: int32 index arrays ``(nnz,)``.
        weights: ``(nnz,)`` floating values.
        shape: static ``(n_out, n_in)``.

    Apply with ``op @ x`` or ``op.apply(x)`` for ``x`` of shape ``(n_in, ...)`` (trailing axes, e.g.
    time, are carried along). Build from scipy with :meth:`from_scipy`.
    """

    rows: jax.Array
    cols: jax.Array
    weights: jax.Array
    shape: tuple[int, int] = dataclasses.field(metadata=dict(static=True))

    @classmethod
    def from_scipy(cls, matrix, dtype=None) -> "SparseOperator":
        coo = sp.coo_matrix(matrix)
        coo.sum_duplicates()
        order = np.lexsort((coo.col, coo.row))  # row-sorted: segment_sum can assume sorted ids
        return cls(
            rows=jnp.asarray(coo.row[order], jnp.int32),
            cols=jnp.asarray(coo.col[order], jnp.int32),
            weights=jnp.asarray(coo.data[order], dtype=dtype or jnp.result_type(float)),
            shape=(int(coo.shape[0]), int(coo.shape[1])),
        )

    @property
    def nnz(self) -> int:
        return int(self.weights.shape[-1])

    @property
    def dtype(self):
        return self.weights.dtype

    def apply(self, x: jax.Array) -> jax.Array:
        if x.shape[0] != self.shape[1]:
            raise ValueError(
                f"SparseOperator of shape {self.shape} cannot apply to an array whose first axis "
                f"has length {x.shape[0]}."
            )
        w = self.weights.reshape((-1,) + (1,) * (x.ndim - 1)).astype(jnp.result_type(x, self.weights))
        return jax.ops.segment_sum(
            w * x[self.cols], self.rows, num_segments=self.shape[0], indices_are_sorted=True
        )

    def __matmul__(self, x):
        return self.apply(x)

    @property
    def T(self) -> "SparseOperator":
        order = jnp.lexsort((self.rows, self.cols))
        return SparseOperator(
            self.cols[order], self.rows[order], self.weights[order], (self.shape[1], self.shape[0])
        )

    def todense(self) -> jax.Array:
        out = jnp.zeros(self.shape, self.weights.dtype)
        return out.at[self.rows, self.cols].add(self.weights)

    def to_scipy(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (np.asarray(self.weights), (np.asarray(self.rows), np.asarray(self.cols))), shape=self.shape
        )

    def astype(self, dtype) -> "SparseOperator":
        return dataclasses.replace(self, weights=self.weights.astype(dtype))


def as_dense(operator, dtype=None) -> np.ndarray | jax.Array:
    """Dense array from a :class:`SparseOperator`, a scipy sparse matrix or anything array-like."""
    if isinstance(operator, SparseOperator):
        out = operator.todense()
    elif sp.issparse(operator):
        out = operator.toarray()
    else:
        out = operator
    return jnp.asarray(out, dtype=dtype) if dtype is not None else out
