"""Exports of a tab's current state: map as NIfTI, slide-ready PNG, scores as
CSV, a one-file HTML report that opens offline, and the code that reproduces it.

A tab plugs in by implementing the small :class:`ExportSource` protocol and
placing an :class:`ExportBar` in its layout. The file builders are plain
functions (no Panel), tested on their own.
"""

from __future__ import annotations

import base64
import datetime as _dt
import gzip
import html
import io
import re
from typing import Protocol

import numpy as np
import pandas as pd
import panel as pn
import param
import xarray as xr

from analysis.volumes import to_nifti
from dashboard.notify import notify_errors


class ExportSource(Protocol):
    """What a tab provides to be exported."""

    def export_map(self) -> dict:
        """``{"map": DataArray, "background": DataArray | None, "title": str,
        "threshold": float, "name": str, "symmetric": bool, "cut_coords": tuple | None}``,
        and ``"image"``: the map as a NIfTI image on the data's own grid (what the NIfTI
        export saves; without it, the displayed ``map``)."""

    def export_scores(self) -> pd.DataFrame: ...

    def export_summary(self) -> str: ...

    def export_params(self) -> dict: ...

    def export_code(self) -> str: ...


# ---- file builders ----------------------------------------------------------
def nifti_bytes(da: xr.DataArray) -> bytes:
    """The volume as a gzipped NIfTI file (NaN outside the mask written as 0)."""
    filled = da.fillna(0) if np.issubdtype(da.dtype, np.floating) else da
    img = to_nifti(filled.astype(np.float32))
    return gzip.compress(img.to_bytes(), compresslevel=6)


def export_cmap(name: str | None) -> str | None:
    """The matplotlib name of the views' colour map ``name`` (colorcet's ``fire`` is
    ``cet_fire`` there), so that the PNG has the page's colours; None (nilearn's own) for
    a name matplotlib does not know."""
    import matplotlib

    if not name:
        return None
    if name in matplotlib.colormaps:
        return name
    try:
        import colorcet  # noqa: F401 - registers its maps as cet_<name>
    except ImportError:
        return None
    return f"cet_{name}" if f"cet_{name}" in matplotlib.colormaps else None


def stat_map_png(da: xr.DataArray, background: xr.DataArray | None = None, title: str = "",
                 threshold: float | None = None, symmetric: bool = True,
                 cut_coords=None, cmap: str | None = None, dpi: int = 150,
                 vmax: float | None = None) -> bytes:
    """A slide-ready PNG of the map over its background (nilearn's plot_stat_map), in the
    colour map ``cmap`` (a views' name: :func:`export_cmap`), up to ``vmax`` (default
    the map's largest |value|)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from nilearn import plotting

    img = to_nifti(da.fillna(0).astype(np.float32))
    bg = to_nifti(background.fillna(0).astype(np.float32)) if background is not None else None
    values = np.asarray(da.values, dtype=float)
    finite = values[np.isfinite(values)]
    if vmax is None or not np.isfinite(vmax) or vmax <= 0:
        vmax = float(np.abs(finite).max()) if finite.size else 1.0
    fig = plt.figure(figsize=(12, 4.2), facecolor="white")
    cmap = export_cmap(cmap)
    kwargs = {"cmap": cmap} if cmap else {}
    try:
        plotting.plot_stat_map(
            img, bg_img=bg, threshold=threshold or None,
            title=title or None, figure=fig, cut_coords=cut_coords, colorbar=True,
            symmetric_cbar=symmetric, vmax=vmax or 1.0, draw_cross=True, annotate=True,
            black_bg=False, **kwargs)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def _img_tag(png: bytes, alt: str) -> str:
    b64 = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def html_report(title: str, params: dict, summary: str, figures=(), tables=(),
                code: str | None = None) -> str:
    """A one-file HTML report (inline CSS, images as data URIs): opens offline."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in params.items())
    figs = "".join(f"<figure>{_img_tag(png, caption)}<figcaption>{html.escape(caption)}"
                   f"</figcaption></figure>" for caption, png in figures)
    tabs = "".join(f"<h2>{html.escape(name)}</h2>"
                   + df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
                   for name, df in tables)
    code_html = (f"<h2>Code</h2><pre><code>{html.escape(code)}</code></pre>" if code else "")
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
h1 {{ font-size: 1.6em; }} .summary {{ font-family: monospace; font-size: 1.1em;
  background: #f3f3f3; padding: .6em 1em; border-radius: 4px; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }}
th, td {{ text-align: left; padding: .2em 1em .2em 0; border-bottom: 1px solid #ddd; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="summary">{html.escape(summary)}</p>
<h2>Parameters</h2><table>{rows}</table>
{figs}{tabs}{code_html}
<p style="color:#888">fmri-explorer report, {stamp}</p>
</body></html>
"""


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "export"


def code_block(code: str, language: str = "python") -> str:
    """``code`` as a Markdown fenced block, shown as text whatever it holds: the fence
    is longer than any run of backticks in it (a label or a path may hold some)."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code}\n{fence}"


# ---- the widget row ---------------------------------------------------------
class ExportBar(pn.viewable.Viewer):
    """Download buttons for a tab: NIfTI, PNG, CSV, HTML report, and "show code"."""

    source = param.Parameter(doc="The tab: implements ExportSource.")
    stem = param.String(default="fmri-explorer", doc="File name stem.")

    #: The files the bar offers: kind (the file name's extension) -> (button label, CSS class).
    FILES = {"nii.gz": ("Map (NIfTI)", "export-nifti"), "png": ("Figure (PNG)", "export-png"),
             "csv": ("Scores (CSV)", "export-csv"), "html": ("Report (HTML)", "export-html"),
             "py": ("Code (.py)", "export-py")}

    def __init__(self, **params):
        super().__init__(**params)
        self._code = pn.pane.Markdown("", visible=False, css_classes=["export-code"],
                                      sizing_mode="stretch_width")
        show = pn.widgets.Toggle(label="Show code", css_classes=["export-show-code"], width=120)
        show.param.watch(self._toggle_code, "value")
        self._buttons = pn.Row(*(self._download(kind) for kind in self.FILES), show)
        self._layout = pn.Column(self._buttons, self._code, sizing_mode="stretch_width")

    def _download(self, kind):
        label, css = self.FILES[kind]
        return pn.widgets.FileDownload(
            callback=notify_errors(lambda: io.BytesIO(self.content(kind))),
            filename=f"{self.stem}.{kind}", label=label, color="light", embed=False,
            css_classes=[css], width=130)

    def content(self, kind: str) -> bytes:
        """The file of ``kind`` (a key of :attr:`FILES`: "nii.gz", "png", "csv", "html" or
        "py") made from the source's current state: what its button downloads."""
        builders = {"nii.gz": self._nifti, "png": self._png, "csv": self._csv,
                    "html": self._html, "py": self._py}
        if kind not in builders:
            raise ValueError(f"no export of kind {kind!r}: one of {', '.join(builders)}")
        return builders[kind]()

    def _nifti(self) -> bytes:
        spec = self.source.export_map()
        if spec.get("image") is not None:   # on the data's own grid (the views may resample)
            return gzip.compress(spec["image"].to_bytes(), compresslevel=6)
        return nifti_bytes(spec["map"])

    def _png(self) -> bytes:
        spec = self.source.export_map()
        return stat_map_png(spec["map"], spec.get("background"), title=spec.get("title", ""),
                            threshold=spec.get("threshold"), symmetric=spec.get("symmetric", True),
                            cut_coords=spec.get("cut_coords"), cmap=spec.get("cmap"),
                            vmax=spec.get("vmax"))

    def _csv(self) -> bytes:
        return csv_bytes(self.source.export_scores())

    def _py(self) -> bytes:
        return self.source.export_code().encode()

    def _html(self) -> bytes:
        spec = self.source.export_map()
        figures = [(spec.get("title", "map"), self._png())]
        extra = getattr(self.source, "export_figures", None)
        if extra is not None:
            figures += list(extra())
        return html_report(
            title=spec.get("title", self.stem), params=self.source.export_params(),
            summary=self.source.export_summary(), figures=figures,
            tables=[("Scores", self.source.export_scores())],
            code=self.source.export_code()).encode()

    @notify_errors
    def _toggle_code(self, event) -> None:
        if event.new:
            self._code.object = code_block(self.source.export_code())
        self._code.visible = bool(event.new)

    def __panel__(self):
        return self._layout
