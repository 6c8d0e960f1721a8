"""The "Display" group of a tab's controls (issue 15, item 17).

Each tab places its slice viewer's display options there: the colour map and the map's
opacity (:meth:`dashboard.slice_viewer.SliceViewer.controls`: labelled and explained by
the viewer's Parameters, linked both ways), sized to fit the tab's controls column (a
widget wider than the column clips its handles), plus the tab's own display options
(the Encoding tab's fixed colour range). The colour map and opacity are kept in the
URL with the tab's other settings (``<prefix>cmap``, ``<prefix>opacity``), so a shared
link shows the same colours.
"""

from __future__ import annotations

import panel as pn

from dashboard.param_widgets import with_tooltip
from dashboard.share import sync_url

#: What a card takes from the column's width: its border and its children's margins.
CARD_INSET = 30
#: Room for a tooltip icon beside a widget.
ICON_WIDTH = 25
#: The viewer's display Parameters a link carries.
DISPLAY_PARAMETERS = ("cmap", "opacity")


def folded_card(*items, **card_options) -> pn.Card:
    """A ``pn.Card`` holding ``items`` in one column. Panel's page hides each child of a
    collapsed card by setting its ``visible`` and sends each change to the server as a
    message of its own; a session reads its messages one at a time, so a tab's two
    collapsed cards (Display, Your files) put 8-9 of them ahead of the visitor's next
    move (seconds under load). One child: one message per card."""
    return pn.Card(pn.Column(*items, margin=0), **card_options)


def display_url_keys(prefix: str) -> dict:
    """``{parameter: query key}`` of the viewer's display options in a tab's link."""
    return {name: prefix + name for name in DISPLAY_PARAMETERS}


def display_card(viewer, width: int, *extra, url_prefix: str | None = None,
                 collapsed: bool = True) -> pn.Card:
    """A card titled "Display", ``width`` px wide, holding ``viewer``'s display widgets
    (each as wide as the card allows) and then ``extra`` (a tab's own options); with
    ``url_prefix`` (the tab's, e.g. "enc_"), the colour map and opacity follow the URL."""
    if url_prefix is not None:
        sync_url(viewer, display_url_keys(url_prefix))
    items = []
    for name, widget in zip(DISPLAY_PARAMETERS, viewer.controls()):
        # a widget without a tooltip of its own (a slider) has the icon beside it
        own = "description" in widget.param
        widget.width = width - CARD_INSET - (0 if own else ICON_WIDTH)
        if not own:   # room for the handle at the end of the track, before the icon
            widget.margin = (5, 18, 5, 10)
        items.append(with_tooltip(widget, viewer.param[name]))
    return folded_card(*items, *extra, title="Display", collapsed=collapsed, width=width,
                       css_classes=["display-controls"], margin=(5, 0))
