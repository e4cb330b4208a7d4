"""Electrophysiology: the Aliev–Panfilov model, its residual and its simulator."""

from ._aliev_panfilov import APParams, ap_residual, ap_rhs
from ._simulate import Stimulus, simulate, stable_substeps

__all__ = ["APParams", "ap_rhs", "ap_residual", "Stimulus", "simulate", "stable_substeps"]
