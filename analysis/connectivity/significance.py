"""The single-subject statistics of a seed map, as methods of
:class:`~analysis.connectivity.model.SeedConnectivity` (a mixin): p per voxel by
Dutilleul's effective sample size (or naive), Benjamini-Hochberg FDR, their maps and
summary line (:mod:`analysis.connectivity.stats` computes them)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import param
import xarray as xr

from .stats import SeedStats, cached_spectra, seed_statistics


class Significance:
    """Mixed into :class:`SeedConnectivity` (which declares ``p_method`` and ``fdr_q``)."""

    @param.depends("result", "p_method", "fdr_q")
    def seed_stats(self) -> SeedStats:
        """The current map's p per voxel, effective sample size and FDR selection
        (:func:`analysis.connectivity.stats.seed_statistics`). The voxels' spectra are
        computed once per cleaning (cached for the process); a new seed, ``p_method`` or
        ``fdr_q`` costs one small product, the t distribution and a sort."""
        res = self.ensure()
        key = (self.p_method, float(self.fdr_q))
        memo = self.__dict__.get("_stats_memo")
        if memo is None or memo[0] is not res or memo[1] != key:
            data = self.cleaned_data()
            spectra = (cached_spectra(self.subject_data(), data)
                       if self.p_method == "effective-dof" else None)
            stats = seed_statistics(res.r, res.seed_signal, spectra, self.p_method,
                                    self.fdr_q, n_volumes=data.n_volumes)
            memo = self.__dict__["_stats_memo"] = (res, key, stats)
        return memo[2]

    @param.depends("result", "p_method", "fdr_q")
    def p_map(self) -> xr.DataArray:
        """``-log10 p`` of each voxel's r, ``(x, y, z)`` in mm, NaN outside the brain
        (attrs: ``p_method``, ``fdr_q``, ``fdr_threshold``: the FDR cut-off in -log10 p,
        None when no voxel survives)."""
        stats = self.seed_stats()
        da = self._volume(stats.log10_p, "neg_log10_p")
        cut = stats.p_threshold
        da.attrs.update(p_method=stats.p_method, fdr_q=stats.fdr_q,
                        fdr_threshold=None if cut is None else float(-np.log10(max(
                            cut, np.finfo(np.float64).tiny))))
        return da

    @param.depends("result", "p_method", "fdr_q", "fisher_z")
    def fdr_map(self) -> xr.DataArray:
        """The map shown (r, or z with ``fisher_z``) where the voxel survives FDR, NaN
        elsewhere."""
        values = self.ensure().z if self.fisher_z else self.ensure().r
        values = np.where(self.seed_stats().significant, values, np.nan)
        return self._volume(values, "fisher_z" if self.fisher_z else "r")

    @param.depends("result", "p_method", "fdr_q")
    def fdr_r_threshold(self) -> float | None:
        """The smallest ``|r|`` that survives FDR at ``fdr_q`` (None: no voxel does)."""
        return self.seed_stats().r_threshold

    @param.depends("result", "p_method", "fdr_q")
    def stats_summary(self) -> str:
        """One line, e.g. ``FDR q < 0.05: 1,204 voxels (|r| >= 0.41); effective dof:
        median 38.1 of 168 volumes (Dutilleul)``."""
        st = self.seed_stats()
        kept = (f"{st.n_significant:,} voxels (|r| >= {st.r_threshold:.2f})"
                if st.r_threshold is not None else "no voxel")
        if st.p_method == "naive":
            dof = f"naive: {st.n_volumes - 2} dof, volumes taken as independent"
        else:
            dof = (f"effective sample size: median {np.median(st.n_eff):.1f} of "
                   f"{st.n_volumes} volumes (Dutilleul)")
        return f"FDR q < {st.fdr_q:g}: {kept}; {dof}"

    def p_nifti(self) -> nib.Nifti1Image:
        """``-log10 p`` as a NIfTI image (float32, 0 outside the brain) on the data's own
        grid, as :meth:`to_nifti`."""
        from ..volumes import unmask

        data = self.cleaned_data()
        return unmask(self.seed_stats().log10_p, (data.mask, data.affine))
