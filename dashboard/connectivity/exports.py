"""What the Connectivity tab exports: the NIfTI maps and the Export bar's source.

A mixin of :class:`dashboard.connectivity.tab.ConnectivityTab` implementing the
source protocol of :class:`dashboard.export.ExportBar` (the map with its
background, the peaks as scores, the summary, the parameters, a plain nilearn
script) and the r / z map downloads, all from the tab's model.
"""

from __future__ import annotations

import io

import pandas as pd

from analysis.connectivity import PREPROCESSING


class ConnectivityExports:
    """The tab's exports (see dashboard/export.py)."""

    def nifti_bytes(self, fisher_z: bool) -> io.BytesIO:
        """The map as a gzipped NIfTI (what the r / z map download buttons give): Fisher
        z values if ``fisher_z``, else r."""
        import gzip

        img = self.model.to_nifti(fisher_z=fisher_z)
        return io.BytesIO(gzip.compress(img.to_bytes(), compresslevel=6))

    def export_map(self) -> dict:
        m = self.model
        return {"map": m.stat_map(), "background": self.viewer.background,
                "image": m.to_nifti() if m.result is not None else None,   # the data's grid
                "title": m.summary(), "threshold": m.display_threshold(),
                "name": "z_map" if m.fisher_z else "r_map", "symmetric": True,
                "cut_coords": tuple(m.result.seed_mm) if m.result else None,
                "cmap": self.viewer.cmap}   # the views' colour map

    def export_scores(self) -> pd.DataFrame:
        return self.model.peaks()

    def export_summary(self) -> str:
        return self.model.summary()

    def export_params(self) -> dict:
        m = self.model
        names = ("subject", "seed_mm", "radius_mm", *PREPROCESSING, "t_r", "threshold",
                 "fisher_z")
        params = {k: getattr(m, k) for k in names}
        if m.uses_own_data:
            params.pop("subject")
            params["data"] = "your files: " + ", ".join(
                f"{r} {n}" for r, n in m.subject_data().info.get("uploads", {}).items())
        return params

    def export_code(self) -> str:
        """A plain nilearn / scikit-learn script reproducing the tab (see analysis.scripts);
        uploads by the names the user gave them, in the folder it runs in."""
        from analysis.scripts import connectivity_script

        return connectivity_script(self.model)
