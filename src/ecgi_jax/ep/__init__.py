"""Electrophysiology: the Aliev–Panfilov model, its residual and its simulator; other ionic models
(Mitchell–Schaeffer, Fenton–Karma) for ground truths the inverse does not assume; activation
times of potential traces."""

from ._activation import activation_times
from ._aliev_panfilov import APParams, ap_residual, ap_rhs
from ._problem import APProblem
from ._ionic import IONIC_MODELS, AlievPanfilov, FentonKarma, MitchellSchaeffer, cable_properties, simulate_ionic, time_scale
from ._simulate import Stimulus, integrate, simulate, stable_substeps

__all__ = [
    "APParams", "ap_rhs", "ap_residual", "Stimulus", "simulate", "integrate", "stable_substeps",
    "AlievPanfilov", "MitchellSchaeffer", "FentonKarma", "IONIC_MODELS", "simulate_ionic", "cable_properties", "time_scale",
    "activation_times", "APProblem",
]
