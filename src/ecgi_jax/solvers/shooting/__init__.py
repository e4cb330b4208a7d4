"""Inverse ECG by shooting through the differentiable Aliev–Panfilov simulator."""

from ._pacing import PacingSearch, farthest_point_sample, pacing_search

__all__ = ["PacingSearch", "farthest_point_sample", "pacing_search"]
