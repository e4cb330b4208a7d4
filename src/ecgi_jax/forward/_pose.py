"""A heart the inverse may move: the BEM transfer matrix as a function of the heart's rigid pose.

Where the imaging puts the heart is uncertain by millimetres (segmentation, respiration, the
patient's position on the table), and a transfer matrix built for the wrong position is the error
that hurts a model-based inverse most (``experiments/noncrime_study.py``, scenario *shift*). A pose
is six numbers, ``(tx, ty, tz, wx, wy, wz)``: a translation in the meshes' length unit and a
rotation vector in radians (axis × angle) about the heart's centroid. A rigid motion changes
``A`` smoothly, so a pose can be fitted to the recordings together with the heart's potentials:
:func:`fit_pose_step` is one Gauss–Newton step in the pose for given potentials.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..geometry import Mesh
from ._bem import transfer_matrix

__all__ = ["MovableHeart", "rotation_matrix", "moved_heart", "fit_pose_step"]

# Finite-difference steps of the pose Jacobian: 1 mm and 1 degree (the shifts fitted are ~10 mm,
# and A's change over 1 mm is smooth at the BEM's resolution).
POSE_STEPS = np.array([1.0, 1.0, 1.0, *np.deg2rad([1.0, 1.0, 1.0])])


def rotation_matrix(rotation_vector) -> np.ndarray:
    """The rotation by ``|w|`` radians about ``w / |w|`` (Rodrigues' formula); ``w = 0``: identity."""
    w = np.asarray(rotation_vector, np.float64)
    if w.shape != (3,) or not np.all(np.isfinite(w)):
        raise ValueError(f"a rotation vector is 3 finite numbers (axis × angle in radians); got {rotation_vector!r}.")
    angle = np.linalg.norm(w)
    if angle == 0:
        return np.eye(3)
    x, y, z = w / angle
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _check_pose(pose) -> np.ndarray:
    pose = np.zeros(6) if pose is None else np.asarray(pose, np.float64)
    if pose.shape != (6,) or not np.all(np.isfinite(pose)):
        raise ValueError(
            f"a pose is 6 finite numbers (tx, ty, tz in the mesh's length unit; wx, wy, wz a rotation vector in "
            f"radians); got {pose!r}."
        )
    return pose


def _check_free(free) -> np.ndarray:
    checked = np.ones(6, bool) if free is None else np.asarray(free)
    if checked.shape != (6,) or checked.dtype != bool or not checked.any():
        raise ValueError(f"free must be 6 booleans, at least one True (the pose components to fit); got {free!r}.")
    return checked


def moved_heart(heart: Mesh, pose) -> Mesh:
    """``heart`` rotated by ``pose[3:]`` about its centroid, then shifted by ``pose[:3]``."""
    pose = _check_pose(pose)
    centre = heart.vertices.mean(axis=0)
    return Mesh((heart.vertices - centre) @ rotation_matrix(pose[3:]).T + centre + pose[:3], heart.triangles)


class MovableHeart(NamedTuple):
    """The heart and torso a transfer matrix was built from, so that the heart can be moved.

    Attributes:
        heart, torso: closed surfaces in one frame and length unit (as for
            :func:`~ecgi_jax.forward.transfer_matrix`).
        electrodes: torso vertex indices (or a mask) of the leads, or ``None`` (every torso node).
        reference: ``"none"`` or ``"mean"``, as the ``A`` it stands for was built.
    """

    heart: Mesh
    torso: Mesh
    electrodes: Any = None
    reference: str = "none"

    def transfer_matrix(self, pose=None, dtype=np.float64) -> np.ndarray:
        """``A (m, n)`` for the heart at ``pose`` (``None``: where it is)."""
        heart = self.heart if pose is None else moved_heart(self.heart, pose)
        return transfer_matrix(heart, self.torso, electrodes=self.electrodes, reference=self.reference, dtype=dtype)

    def pose_jacobian(self, pose=None, A=None, free=None) -> np.ndarray:
        """``∂A/∂pose (6, m, n)`` by forward differences of :data:`POSE_STEPS` (a BEM solve per
        component); ``A``: the matrix at ``pose`` when the caller has it; ``free``: 6 booleans, the
        components wanted (the others are left zero, unsolved); default all."""
        pose, free = _check_pose(pose), _check_free(free)
        A = self.transfer_matrix(pose) if A is None else np.asarray(A, np.float64)
        return np.stack([
            (self.transfer_matrix(pose + h * e) - A) / h if on else np.zeros_like(A)
            for h, e, on in zip(POSE_STEPS, np.eye(6), free)
        ])

    def matching_matrix(self, A, rtol: float = 1e-3) -> np.ndarray:
        """The transfer matrix at the heart's own pose (float64), after checking that it reproduces
        ``A``, the inverse's matrix (relative Frobenius difference within ``rtol``); raises if not."""
        A = np.asarray(A, np.float64)
        A_here = self.transfer_matrix()
        if A_here.shape != A.shape:
            raise ValueError(
                f"the movable heart gives a {A_here.shape} transfer matrix, A is {A.shape}: check its electrodes "
                "(one row per lead of Y) and heart (one column per node)."
            )
        err = np.linalg.norm(A_here - A) / max(np.linalg.norm(A), np.finfo(float).tiny)
        if not err <= rtol:
            raise ValueError(
                f"the movable heart does not reproduce A (relative difference {err:.2g}): build it from the meshes, "
                "electrodes, length unit and reference (\"none\" or \"mean\") that A was built from."
            )
        return A_here


def fit_pose_step(Y, U, A, jacobian, pose, free=None) -> np.ndarray:
    """One Gauss–Newton step of ``min over pose of ||Y − A(pose) U||²`` for fixed potentials ``U``:
    the new pose, from ``A = A(pose)`` and the Jacobian ``(6, m, n)`` (linear least squares in the
    six numbers, ``[(J_k U)] · δ ≈ Y − A U``). ``free``: 6 booleans, the components to fit (the
    others stay); default all."""
    Y, U, A = (np.asarray(x, np.float64) for x in (Y, U, A))
    J = np.asarray(jacobian, np.float64)
    if J.shape != (6, *A.shape) or Y.shape != (A.shape[0], U.shape[1]) or U.shape[0] != A.shape[1]:
        raise ValueError(f"shapes disagree: Y {Y.shape}, U {U.shape}, A {A.shape}, jacobian {J.shape} (want (6, m, n)).")
    free = _check_free(free)
    G = np.einsum("kmn,nt->mtk", J[free], U).reshape(-1, int(free.sum()))
    delta = np.zeros(6)
    delta[free] = np.linalg.lstsq(G, (Y - A @ U).ravel(), rcond=None)[0]
    return _check_pose(pose) + delta
