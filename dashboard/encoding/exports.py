"""What the Encoding tab exports: the Export bar's source (see dashboard/export.py).

A mixin of :class:`dashboard.encoding.tab.EncodingTab` implementing the source
protocol of :class:`dashboard.export.ExportBar`: the R^2 map with its background
(the PNG cut through the crosshair: the selected voxel),
the per-fold R^2 of every voxel as scores (with each voxel's best alpha), the summary,
the parameters and a plain nilearn / scikit-learn script, all from the tab's analysis
(on the user's own files: their delays and grid, and a script reading them by the
names the user gave them).
"""

from __future__ import annotations

import pandas as pd


class EncodingExports:
    """The tab's exports (see dashboard/export.py)."""

    def export_map(self) -> dict:
        """The R^2 map, cut (PNG) through the crosshair, as the slice viewer shows it: the
        selected voxel, or where the viewer was last clicked."""
        from analysis.volumes import unmask

        a = self.analysis
        return {"map": a.r2_map(), "background": a.background(),
                "image": unmask(a.mean_r2().values, a.data().mask_img),   # the data's grid
                "title": f"cross-validated R2 (alpha={a.alpha:.4g})", "threshold": a.threshold,
                "name": "r2_map", "symmetric": False,
                "cut_coords": tuple(float(c) for c in self.viewer.crosshair_mm),
                "cmap": self.viewer.cmap,   # the views' colours and range (fixed or not)
                "vmax": float(self.viewer.colour_range()[1])}

    def export_scores(self) -> pd.DataFrame:
        a = self.analysis
        r2 = a.r2_folds()
        df = pd.DataFrame(r2.values.T, columns=[f"fold_{i}" for i in r2.fold.values])
        df.insert(0, "mean_r2", r2.mean("fold").values)
        df.insert(0, "voxel", r2.voxel.values)
        df["best_alpha"] = a.alpha_path().best_alpha.values   # the alpha path's
        return df

    def export_summary(self) -> str:
        return self.analysis.summary()

    def export_params(self) -> dict:
        a = self.analysis
        if a.own is not None:   # the user's files: their delays instead of the lag
            own = a.own
            return {"source": "your files", **{k: getattr(a, k) for k in (
                        "alpha", "cv", "n_folds", "dtype", "threshold")},
                    "delays": list(own.delays), "n_features": own.n_features,
                    "grid": list(own.grid) if own.grid else None,
                    "grid_order": own.order if own.grid else None, "files": own.files}
        return {k: getattr(a, k) for k in ("alpha", "cv", "n_folds", "lag", "dtype", "threshold")}

    def export_code(self) -> str:
        """A plain nilearn / scikit-learn script reproducing the tab (see analysis.scripts;
        on the user's files, :func:`analysis.encoding.user.own_files_script`)."""
        a = self.analysis
        if a.own is not None:
            from analysis.encoding.user import own_files_script

            return own_files_script(a.own, a.alpha, a.cv, a.n_folds, a.threshold)
        from analysis.scripts import encoding_script

        return encoding_script(a)
