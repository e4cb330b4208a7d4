"""Forward model: heart-surface potentials -> body-surface potentials, the observation model
(gain and offsets of the recordings), the heart's rigid pose, and measurement noise."""

from ._bem import (
    bem_blocks,
    edl_transfer_matrix,
    electrode_indices,
    layer_integrals,
    nearest_vertex_electrodes,
    select_electrodes,
    transfer_matrix,
    winding_number,
)
from ._mfs import mfs_sources, mfs_transfer_matrix
from ._pose import MovableHeart, fit_pose_step, moved_heart, rotation_matrix
from ._noise import add_noise, add_noise_snr, correlated_noise
from ._reference import rereference
from ._observation import (
    OBSERVATIONS,
    RECORDING_OBSERVATIONS,
    NoPositiveGain,
    Observation,
    check_observation,
    extracellular_observation,
    without_common_mode,
    reduce_observation,
    fit_observation,
    misfit_scale,
    observed_residual,
    project_gain_offset,
    relative_misfit,
)

__all__ = [
    "MovableHeart",
    "moved_heart",
    "rotation_matrix",
    "fit_pose_step",
    "rereference",
    "OBSERVATIONS",
    "RECORDING_OBSERVATIONS",
    "NoPositiveGain",
    "Observation",
    "without_common_mode",
    "reduce_observation",
    "extracellular_observation",
    "check_observation",
    "fit_observation",
    "project_gain_offset",
    "observed_residual",
    "relative_misfit",
    "misfit_scale",
    "add_noise",
    "add_noise_snr",
    "correlated_noise",
    "transfer_matrix",
    "edl_transfer_matrix",
    "mfs_transfer_matrix",
    "mfs_sources",
    "select_electrodes",
    "electrode_indices",
    "nearest_vertex_electrodes",
    "bem_blocks",
    "layer_integrals",
    "winding_number",
]
