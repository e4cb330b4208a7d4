"""Activation-based inverse: activation times as the unknowns of a parametrised upstroke."""

from ._activation_inverse import activation_cost, fit_activation_times, gauss_newton_system, upstroke

__all__ = ["upstroke", "activation_cost", "gauss_newton_system", "fit_activation_times"]
