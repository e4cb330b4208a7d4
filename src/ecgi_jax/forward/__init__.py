"""Forward model: heart-surface potentials -> body-surface potentials, and measurement noise."""

from ._bem import (
    bem_blocks,
    electrode_indices,
    layer_integrals,
    nearest_vertex_electrodes,
    select_electrodes,
    transfer_matrix,
    winding_number,
)
from ._mfs import mfs_sources, mfs_transfer_matrix
from ._noise import add_noise, add_noise_snr

__all__ = [
    "add_noise",
    "add_noise_snr",
    "transfer_matrix",
    "mfs_transfer_matrix",
    "mfs_sources",
    "select_electrodes",
    "electrode_indices",
    "nearest_vertex_electrodes",
    "bem_blocks",
    "layer_integrals",
    "winding_number",
]
