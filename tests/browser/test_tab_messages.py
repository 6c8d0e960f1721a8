"""What the page sends the server when a tab is opened for the first time.

A session's messages are read one at a time, each after the server has answered the one
before: under load every message costs the visitor a turn of the server's event loop
before their next move is read. Measured in the hostile-load run (issue 13): the first
move on a newly opened tab waited behind some 30 such messages and went unanswered for
30 s. Two kinds were the app's own doing and are bounded here: the new tab's sections
each rewrote the URL (the page sends its address back after each rewrite), and Panel's
page hides each child of a collapsed card with a ``visible`` change of its own.
"""

from __future__ import annotations

import json

from tests.browser.conftest import open_page
from tests.browser.helpers import open_tab, wait_text

#: the collapsed cards of each tab (Display, Your files)
COLLAPSED_CARDS = {"Decoding": 2, "Connectivity": 2}


def _changes(frames: list) -> list:
    """``(attr, new)`` of each model change in the page's PATCH-DOC messages."""
    out = []
    for frame in frames:
        if not isinstance(frame, str) or '"events"' not in frame:
            continue
        try:
            content = json.loads(frame)
        except ValueError:
            continue
        for event in content.get("events", []):
            if event.get("kind") == "ModelChanged":
                out.append((event.get("attr"), event.get("new")))
    return out


def test_a_tab_opened_sends_one_address_and_one_visibility_change_per_card(page, app_url):
    frames: list = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
    open_page(page, app_url)           # the Encoding tab
    wait_text(page, ".summary", lambda t: t.startswith("alpha="))
    for name, cards in COLLAPSED_CARDS.items():
        frames.clear()
        open_tab(page, name)
        page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
        page.wait_for_timeout(1500)   # the page's layout reports have gone out
        changes = _changes(frames)
        addresses = [new for attr, new in changes if attr == "href"]
        hidden = [new for attr, new in changes if attr == "visible"]
        assert ("active", list(COLLAPSED_CARDS).index(name) + 1) in changes  # recorded
        assert len(addresses) <= 1, (name, addresses)
        assert len(hidden) <= cards, (name, changes)
        assert f"tab={name.lower()}" in addresses[-1], addresses
