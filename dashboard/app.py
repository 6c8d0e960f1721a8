"""The served app: one tab per analysis.

    panel serve dashboard/app.py          # or: fmri-explorer serve

Each tab is a :class:`panel.viewable.Viewer` over its analysis' Param class.
Heavy state (datasets, cleaned data, decompositions) is cached per process and
shared between sessions; a session only holds its parameters and views.
Everything the page needs is served by this server (no CDN, no web fonts), so
the app works with no internet.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # `panel serve dashboard/app.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import panel as pn

from analysis.config import default_size
from dashboard.notify import report_error

log = logging.getLogger("fmri_explorer.dashboard")

#: (tab title, module in dashboard/, Viewer class)
TABS = [
    ("Encoding", "dashboard.encoding", "EncodingTab"),
    ("Decoding", "dashboard.decoding", "DecodingTab"),
    ("Connectivity", "dashboard.connectivity", "ConnectivityTab"),
]

CSS = """
.summary p, .summary pre { font-family: monospace; font-size: 14px; margin: 4px 0; }
"""

pn.extension(notifications=True, raw_css=[CSS], sizing_mode="fixed",
             design="native", loading_indicator=True)


def _tab(title: str, module: str, cls: str):
    """Build one tab; a failure shows an error in that tab, the others keep working."""
    try:
        viewer = getattr(importlib.import_module(module), cls)()
        return pn.panel(viewer)
    except Exception as exc:  # noqa: BLE001 - one broken tab must not take the app down
        message = report_error(exc)
        log.exception("tab %s failed", title)
        return pn.pane.Alert(f"**{title}** could not start: {message}", alert_type="danger",
                             width=700)


def create_app(size: str | None = None) -> pn.viewable.Viewable:
    """The whole app for one session."""
    if size is not None:
        os.environ["FMRI_EXPLORER_SIZE"] = size
    tabs = pn.Tabs(*[(title, _tab(title, module, cls)) for title, module, cls in TABS],
                   dynamic=True, css_classes=["analysis-tabs"], sizing_mode="stretch_width")
    header = pn.Row(
        pn.pane.Markdown("## fmri-explorer", margin=(0, 10)),
        pn.pane.Markdown(f"synthetic data: **{default_size()}** size &nbsp;|&nbsp; "
                         "encoding (Miyawaki 2008) · decoding (Haxby 2001) · seed connectivity",
                         margin=(12, 10)),
        sizing_mode="stretch_width",
    )
    return pn.Column(header, tabs, sizing_mode="stretch_width")


if pn.state.served:
    create_app().servable(title="fmri-explorer")
