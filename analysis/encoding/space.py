"""Voxels and space for :class:`analysis.encoding.model.EncodingAnalysis`: a voxel's grid
indices and millimetres, the voxel at grid indices, and the background image."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..volumes import to_xarray, voxel_to_mm


class VoxelSpace:
    """Mixin: needs ``data()`` (with ``mask_img`` and ``background``) and ``_voxel(v)``."""

    def voxel_ijk(self, voxel=None) -> tuple:
        """Grid indices (i, j, k) of a voxel given in mask order."""
        v = self._voxel(voxel)
        mask = np.asarray(self.data().mask_img.dataobj).astype(bool)
        return tuple(int(a[v]) for a in np.nonzero(mask))

    def voxel_mm(self, voxel=None) -> tuple:
        ijk = self.voxel_ijk(voxel)
        return tuple(float(c) for c in voxel_to_mm(self.data().mask_img.affine, ijk))

    def voxel_at(self, ijk) -> int | None:
        """Mask-order index of grid voxel ``(i, j, k)``, or None outside the mask."""
        mask = np.asarray(self.data().mask_img.dataobj).astype(bool)
        i, j, k = (int(a) for a in ijk)
        if not (0 <= i < mask.shape[0] and 0 <= j < mask.shape[1] and 0 <= k < mask.shape[2]):
            return None
        if not mask[i, j, k]:
            return None
        flat = np.ravel_multi_index((i, j, k), mask.shape)
        return int(np.searchsorted(np.flatnonzero(mask.ravel()), flat))

    def background(self) -> xr.DataArray | None:
        bg = self.data().background
        return None if bg is None else to_xarray(bg, name="background")
