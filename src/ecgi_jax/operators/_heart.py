"""One heart model for every method: the operators and geometry the inverse methods use, and the
units they are in."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..geometry import Mesh
from ._laplacian import huiskamp_laplacian, surface_gradient

__all__ = ["HeartModel", "mesh_in_mm", "LENGTH_UNITS", "TIME_UNITS", "PLAUSIBLE_SPACING_MM", "DEFAULT_MS_PER_AP"]

#: Millimetres per length unit a mesh may come in. The operators are built in mm: the unit of the
#: Aliev–Panfilov diffusion coefficient ``D`` (mm² per AP time unit).
LENGTH_UNITS = {"um": 1e-3, "mm": 1.0, "cm": 10.0, "m": 1000.0}

#: Time units recordings may come in, as their size in ms (``"ap"``: the model's own time unit).
TIME_UNITS = {"ap": None, "ms": 1.0, "s": 1000.0}

#: Mean edge lengths (mm) plausible for a heart mesh. Outside them the length unit is wrong: a
#: heart in metres has edges of ~0.005 "mm", and its Laplacian would ask the AP simulator for
#: ~10⁵ sub-steps per sample.
PLAUSIBLE_SPACING_MM = (0.3, 20.0)

#: ms per AP time unit when recordings are in ms and no time scale is given. Two independent
#: reads of the reference model agree on it: its APD50 is 25 AP units (``ep.cable_properties``)
#: against ~250 ms for human ventricle, and its conduction velocity 5.1 mm per AP unit against
#: ~0.5 mm/ms. For a given heart, derive it from a measured APD or CV with
#: ``ecgi_jax.ep.time_scale`` (``tests/test_units.py`` checks both reads against this value).
DEFAULT_MS_PER_AP = 10.0


class HeartModel(NamedTuple):
    """What the inverse knows about the heart, built once and given to any method.

    ``solve(Y, A, method=..., heart=model)`` passes each field to the methods that take it
    (``laplacian`` to Tikhonov-2, spatiotemporal, EAND-ARN, ...; ``gradient`` to Tikhonov-1 and
    total variation; ``vertices``/``adjacency`` to the pacing search and shooting; ``dt`` to the
    time-aware methods) and leaves out what a method does not use, so one call shape serves every
    method. A field left ``None`` is not passed.

    Units: the operators and vertices are in mm and ``dt`` is in the model's time unit (AP units
    for the physics-based methods), as the methods take them. :meth:`from_mesh` converts a mesh in
    another length unit and recordings sampled in ms or s; ``time_unit`` / ``time_scale`` remember
    the recordings' unit, and :func:`~ecgi_jax.solve` gives the times it reports (activation times,
    pacing onsets) back in it.

    Attributes:
        laplacian: ``(n, n)`` surface Laplacian (``Δ``; negative semi-definite, ``L·1 = 0``), 1/mm².
        gradient: ``(K, n)`` surface gradient (1/mm), or ``None``.
        vertices: ``(n, 3)`` node coordinates in mm, or ``None``.
        adjacency: the 1-ring, CSR ``(indptr, indices)``, or ``None``.
        dt: sample spacing in AP time units (the recordings' spacing divided by ``time_scale``), or
            ``None`` (each method's default).
        time_unit: the recordings' time unit (``"ap"``, ``"ms"`` or ``"s"``).
        time_scale: size of one AP time unit in ``time_unit`` (1 for ``"ap"``).
        observation: how the recordings relate to the model's potentials, for the methods that
            model it (``ap-shooting``, ``eand-arn``): ``"identity"`` (``Y = A·u``),
            ``"gain-offset"`` (``Y = g·A·u + b``: recordings in mV, per-lead references; see
            :func:`ecgi_jax.forward.project_gain_offset`), ``"extracellular"`` (``A`` maps
            heart-surface extracellular potentials, as for a sock of electrograms:
            ``Y ≈ −g·A·u + (A·1)·c(t) + b``; :func:`ecgi_jax.forward.without_common_mode`), or
            ``None`` (each method's default).
        movable_heart: the heart and torso meshes and electrodes ``A`` was built from, as an
            :class:`ecgi_jax.forward.MovableHeart`, for the methods that can move the heart to
            where the recordings put it (``eand-arn``), or ``None`` (the heart stays where ``A``
            puts it).
    """

    laplacian: Any = None
    gradient: Any = None
    vertices: Any = None
    adjacency: Any = None
    dt: float | None = None
    time_unit: str = "ap"
    time_scale: float = 1.0
    observation: str | None = None
    movable_heart: Any = None

    @classmethod
    def from_mesh(
        cls, mesh: Mesh, *, dt: float | None = None, length_unit: str = "mm", time_unit: str = "ap",
        time_scale: float | None = None, observation: str | None = None,
    ) -> "HeartModel":
        """The Huiskamp 1-ring Laplacian, the area-weighted surface gradient, the vertices and
        the 1-ring of a validated heart ``mesh``, in mm.

        Args:
            mesh: the heart surface.
            dt: sample spacing of the recordings, in ``time_unit``.
            length_unit: the unit of ``mesh``'s coordinates, one of :data:`LENGTH_UNITS`; they
                are converted to mm.
            time_unit: the unit of ``dt``: ``"ap"`` (the model's), ``"ms"`` or ``"s"``.
            time_scale: one AP time unit in ``time_unit`` (default :data:`DEFAULT_MS_PER_AP` ms;
                from a measured APD or conduction velocity: :func:`ecgi_jax.ep.time_scale`).
                Only with ``time_unit`` ms or s.
            observation: the observation model of the recordings (see the class), checked by
                the methods that take it.

        Raises:
            ValueError: an unknown unit; a mesh whose mean edge in mm lies outside
                :data:`PLAUSIBLE_SPACING_MM` (naming the unit that would fit); a non-positive
                ``dt`` or ``time_scale``; a ``time_scale`` with ``time_unit="ap"``.
        """
        mesh_mm = mesh_in_mm(mesh, length_unit)
        dt, time_scale = _in_ap_time(dt, time_unit, time_scale)
        return cls(
            laplacian=huiskamp_laplacian(mesh_mm.vertices, mesh_mm.adjacency),
            gradient=surface_gradient(mesh_mm),
            vertices=np.asarray(mesh_mm.vertices),
            adjacency=mesh_mm.adjacency,
            dt=dt,
            time_unit=time_unit,
            time_scale=time_scale,
            observation=_checked_observation(observation),
        )

    @classmethod
    def sampled(cls, dt: float, *, time_unit: str = "ap", time_scale: float | None = None) -> "HeartModel":
        """Only the sampling: ``dt`` in ``time_unit`` (as :meth:`from_mesh`), for callers that
        build the operators themselves (``HeartModel.sampled(1.0, time_unit="ms")._replace(laplacian=L)``)."""
        dt, time_scale = _in_ap_time(dt, time_unit, time_scale)
        return cls(dt=dt, time_unit=time_unit, time_scale=time_scale)

    def options_for(self, accepted) -> dict:
        """The fields a method taking the options ``accepted`` uses, as keyword options."""
        fields = self._asdict()
        del fields["time_unit"], fields["time_scale"]  # units of the fields, not method options
        return {k: v for k, v in fields.items() if v is not None and k in accepted}

    def to_time_unit(self, t):
        """Times ``t`` in AP units (as the methods report them) in the recordings' ``time_unit``."""
        return np.asarray(t, np.float64) * self.time_scale


def _checked_observation(observation):
    # Only the type here: the names belong to the forward layer, which checks them when a method
    # uses them (``forward.check_observation``, naming the valid ones).
    if observation is not None and not isinstance(observation, str):
        raise TypeError(f"observation must be None or a name such as 'gain-offset'; got {type(observation).__name__}.")
    return observation


def mesh_in_mm(mesh: Mesh, length_unit: str = "mm") -> Mesh:
    """``mesh`` (coordinates in ``length_unit``, one of :data:`LENGTH_UNITS`) in mm, after checking
    that its mean edge is plausible for a heart in that unit (``ValueError`` naming the unit that
    would fit, as :meth:`HeartModel.from_mesh`)."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be an ecgi_jax.geometry.Mesh; got {type(mesh).__name__}.")
    if length_unit not in LENGTH_UNITS:
        raise ValueError(f"length_unit must be one of {sorted(LENGTH_UNITS)}; got {length_unit!r}.")
    _check_spacing(mesh.mean_edge_length, length_unit)
    return mesh if LENGTH_UNITS[length_unit] == 1.0 else mesh.scaled(LENGTH_UNITS[length_unit])


def _check_spacing(mean_edge: float, unit: str) -> None:
    lo, hi = PLAUSIBLE_SPACING_MM
    h = mean_edge * LENGTH_UNITS[unit]
    if lo <= h <= hi:
        return
    fits = [u for u, f in LENGTH_UNITS.items() if lo <= mean_edge * f <= hi]
    fix = f"Is the mesh in {' or '.join(fits)}? Pass length_unit={fits[0]!r}." if fits else "Check the mesh's coordinates."
    raise ValueError(
        f"the heart mesh's mean edge is {h:.3g} mm read with length_unit={unit!r}, outside the {lo}-{hi} mm "
        f"plausible for a heart mesh (the Aliev-Panfilov model's D is in mm^2 per time unit). {fix}"
    )


def _in_ap_time(dt, unit: str, time_scale):
    """``(dt in AP units, time_scale)`` for a spacing ``dt`` in ``unit``."""
    if unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {list(TIME_UNITS)}; got {unit!r}.")
    if unit == "ap":
        if time_scale is not None:
            raise ValueError("time_scale converts ms or s to AP time units: give it with time_unit='ms' or 's'.")
        time_scale = 1.0
    elif time_scale is None:
        time_scale = DEFAULT_MS_PER_AP / TIME_UNITS[unit]
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float, np.floating, np.integer)) or not (
        math.isfinite(time_scale) and time_scale > 0
    ):
        raise ValueError(f"time_scale must be a positive number ({unit} per AP time unit); got {time_scale!r}.")
    if dt is None:
        return None, float(time_scale)
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)) or not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of {unit} between samples; got {dt!r}.")
    return float(dt) / float(time_scale), float(time_scale)
