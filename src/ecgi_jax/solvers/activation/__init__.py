"""Activation-based inverses: activation times as the unknowns of a parametrised upstroke, or of
one learned waveform shifted node by node (the waveform template), and the fronts from a few sites
nearest to a map of activation times."""

from ._eikonal import EikonalMap, eikonal_projection
from ._activation_inverse import activation_cost, fit_activation_times, gauss_newton_system, upstroke
from ._template import TemplateFit, fit_template, initial_waveform, prior_whitener, smooth_modes, template_potentials

__all__ = [
    "upstroke", "activation_cost", "gauss_newton_system", "fit_activation_times",
    "EikonalMap", "eikonal_projection",
    "TemplateFit", "fit_template", "initial_waveform", "prior_whitener", "smooth_modes", "template_potentials",
]
