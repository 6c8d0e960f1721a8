"""What a screen reader hears: each tab's summary line, announced when it changes.

:class:`Announcer` is an ARIA live region (``role="status"``, ``aria-live="polite"``),
visually hidden, made once with the page; its ``text`` is set to the active tab's
summary line, as plain text, whenever that changes (a new alpha, seed, C, dataset...),
so the change is read out without moving the focus. The summary panes themselves are
replaced as a whole by each update (a live region must stay in place to be announced),
hence one region for the page.
"""

from __future__ import annotations

import html
import re

import param
from panel.custom import JSComponent

#: markup that a summary may carry (Markdown emphasis, HTML tags): not read out
_MARKUP = re.compile(r"<[^>]*>|[*_`#]")


def plain(text) -> str:
    """``text`` (a Markdown or HTML pane's object) as the words a screen reader says."""
    return " ".join(html.unescape(_MARKUP.sub("", str(text or ""))).split())


class Announcer(JSComponent):
    """A visually hidden live region; set ``text`` to have it read out."""

    text = param.String(default="", doc="What the region says (plain text).")

    _esm = """
    export function render({ model }) {
      const region = document.createElement("div")
      region.setAttribute("role", "status")
      region.setAttribute("aria-live", "polite")
      region.setAttribute("aria-atomic", "true")
      region.className = "sr-announcer"
      Object.assign(region.style, {position: "absolute", width: "1px", height: "1px",
        overflow: "hidden", clip: "rect(0 0 0 0)", whiteSpace: "nowrap"})
      region.textContent = model.text
      model.on("text", () => { region.textContent = model.text })
      return region
    }
    """


def announce_summaries(announcer: Announcer, tab) -> None:
    """Read out ``tab``'s summary line (its ``summary`` pane) whenever it changes."""
    pane = getattr(tab, "summary", None)
    if pane is None:
        return
    pane.param.watch(lambda event: setattr(announcer, "text", plain(event.new)), "object")
