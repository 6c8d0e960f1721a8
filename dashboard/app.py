"""The served app: one tab per analysis.

    panel serve dashboard/app.py          # or: fmri-explorer serve

Each tab is a :class:`panel.viewable.Viewer` over its analysis' Param class.
Heavy state (datasets, cleaned data, decompositions) is cached per process and
shared between sessions; a session only holds its parameters and views.
Everything the page needs is served by this server (no CDN, no web fonts), so
the app works with no internet.

URL query (whitelisted, see :mod:`dashboard.share`): ``tab`` (encoding,
decoding, connectivity), ``present`` (presentation layout), ``theme``
(``default`` or ``dark``), ``atlas`` (the atlas naming regions: a key of
:data:`analysis.reporting.atlas.ATLASES`), plus each tab's own parameters.

The atlas selector (one per session, every tab's slice viewers and cluster tables
follow it: :mod:`dashboard.clusters`) joins the sidebar with the first tab: the
atlas code is not imported before the page is sent.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `panel serve dashboard/app.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import panel as pn
import param
from panel.custom import JSComponent

from analysis import store
from analysis.config import default_size
from dashboard import jobs, warmup
from dashboard.a11y import Announcer, announce_summaries
from dashboard.batch import batched
from dashboard.notify import loading, report_error, safe_markdown
from dashboard.render.browser import StyleSheetGuard
from dashboard.view_keys import ViewKeys, route_keys
from dashboard.render.styles import fix_divider_stylesheet, local_stylesheets
from dashboard.render.theme import PageTheme, resend_text_sizes, set_figure_theme, switch_theme
from dashboard.share import link_args, read_link, sync_url

log = logging.getLogger("fmri_explorer.dashboard")

#: (tab title, module in dashboard/, Viewer class)
TABS = [
    ("Encoding", "dashboard.encoding", "EncodingTab"),
    ("Decoding", "dashboard.decoding", "DecodingTab"),
    ("Connectivity", "dashboard.connectivity", "ConnectivityTab"),
]
TAB_KEYS = [title.lower() for title, _, _ in TABS]
#: Height of each slice view (px), at most, in the presentation layout.
PRESENT_PLOT_HEIGHT = 400


#: Seconds a first page waits for the warm-up before its tab is built anyway.
WAIT_FIRST_PAGE = 30.0

#: Width (px) beside a tab's views: its controls (at most 290) and the page's paddings.
PRESENT_SIDE_WIDTH = 340


def _views_fit(window_width: int, extent, side: int, axes: int, colour_bar: int) -> float:
    """The slice view height at which the three views (each ``height - 40`` px high and
    as wide as its aspect asks, plus ``axes`` px of axes) and the colour bar fit in the
    window beside ``side`` px of controls and paddings."""
    if extent is None:
        ratio = 3.3  # the full-size Encoding views
    else:
        size = [max(hi - lo, 1.0) for lo, hi in extent]
        ratio = sum(size[h] / size[v] for h, v in ((1, 2), (0, 2), (0, 1)))
    return 40 + (window_width - side - 3 * axes - colour_bar - 60) / ratio


def present_height(window_width: int | None, extent=None) -> int:
    """Slice view height in the presentation layout: the three views and their colour bar
    fit beside the controls in the window's width (at most ``PRESENT_PLOT_HEIGHT``).

    ``extent`` is the viewer's ((x0, x1), (y0, y1), (z0, z1)) in mm: each view's frame
    is ``height - 40`` px high and as wide as its aspect asks, plus 75 px of axes
    (the presentation's larger tick labels) and 100 px of colour bar beside the axial view.
    """
    if not window_width:
        return PRESENT_PLOT_HEIGHT
    fit = _views_fit(window_width, extent, PRESENT_SIDE_WIDTH, 75, 100)
    return int(max(160, min(PRESENT_PLOT_HEIGHT, fit)))


#: Below this window width (px) the normal layout starts with the sidebar closed (the
#: hamburger opens it) and each tab's views shrink to fit beside its controls.
NARROW_WINDOW = 1500


def normal_height(own: int, window_width: int | None, extent=None) -> int:
    """Slice view height in the normal layout: the tab's own (``own``), or on a narrow
    window (a 1366 px laptop) as much as fits beside the controls (at least 170 px)."""
    if not window_width or window_width >= NARROW_WINDOW:
        return own
    fit = _views_fit(window_width, extent, PRESENT_SIDE_WIDTH, 60, 90)
    return int(max(170, min(own, fit)))


def _remember_height(viewer) -> None:
    """Keep the tab's own view height, to go back to when the presentation ends."""
    viewer.__dict__.setdefault("_normal_height", viewer.plot_height)


def session_viewers(doc=None) -> list:
    """The session's slice viewers (:func:`dashboard.slice_viewer.session_viewers`),
    imported when first asked: HoloViews is not imported before the page is sent."""
    from dashboard.slice_viewer import session_viewers as viewers

    return viewers(doc)


def _present_height(viewer, window_width) -> int:
    return present_height(window_width, getattr(viewer, "_extent", None))


def _normal_height(viewer, window_width) -> int:
    return normal_height(viewer.__dict__.get("_normal_height", viewer.plot_height),
                         window_width, getattr(viewer, "_extent", None))

CSS = """
.summary p, .summary pre { font-family: monospace; font-size: 14px; margin: 4px 0; }
body.present { --bokeh-font-size: 17px; --base-font-size: 17px; }
body.present #sidebar { display: none !important; }
"""
#: Presentation layout from the start (``?present=true``), until the toggle says otherwise.
PRESENT_CSS = """
body:not(.normal) { --bokeh-font-size: 17px; --base-font-size: 17px; }
body:not(.normal) #sidebar { display: none !important; }
"""
TOGGLE_JS = """
document.body.classList.toggle('present', cb_obj.active);
document.body.classList.toggle('normal', !cb_obj.active);
"""

# Widget callbacks run on the event loop, in the order the browser sent them (a thread
# pool ran one session's events out of order: a Run click before the count typed just
# before it). Long work (permutations, cleaning, group runs) has its own background
# threads with progress, so it does not block other sessions.
# "tabulator": the cluster tables' widget (dashboard/clusters.py), whose script the page
# must load before a tab with one is built
pn.extension("tabulator", notifications=True, raw_css=[CSS], design="bootstrap",
             loading_indicator=True)
# a Divider made after the page loaded asks this server for its stylesheet, not the CDN
fix_divider_stylesheet()


class WindowWidth(JSComponent):
    """Nothing to see: when drawn, it sends the browser window's width to the server."""

    width_px = param.Integer(default=0, bounds=(0, None), doc="Window width (px).")

    collapse_below = param.Integer(default=0, bounds=(0, None), doc="""
        Close the page's sidebar when the window is narrower than this (px; 0: never).""")

    _esm = """
    export function render({ model }) {
      model.width_px = Math.round(window.innerWidth)
      const sidebar = document.getElementById("sidebar")
      const toggle = document.getElementById("sidebar-toggle")
      if (model.collapse_below && window.innerWidth < model.collapse_below && sidebar
          && toggle && sidebar.classList.contains("show"))
        toggle.click()   // as the hamburger does: the views get the room
      return document.createElement("span")
    }
    """


class AppState(param.Parameterized):
    """The app-level view state that a shared link reproduces."""

    tab = param.Selector(default="encoding", objects=TAB_KEYS, doc="The active tab.")
    present = param.Boolean(default=False, doc="Presentation layout: large views, no sidebar.")
    theme = param.Selector(default="default", objects=["default", "dark"], doc="Colour theme.")
    window_width = param.Integer(default=0, bounds=(0, None), precedence=-1, doc="""
        Width of the browser window (px), sent by the page when it has loaded.""")


#: The app-level parameters kept in the URL and their query keys.
APP_KEYS = {"tab": "tab", "present": "present", "theme": "theme"}


def _tab(title: str, module: str, cls: str):
    """Build one tab; a failure shows an error in that tab, the others keep working."""
    try:
        viewer = getattr(importlib.import_module(module), cls)()
        return viewer, pn.panel(viewer)
    except Exception as exc:  # noqa: BLE001 - one broken tab must not take the app down
        message = report_error(exc)
        log.exception("tab %s failed", title)
        return None, pn.pane.Alert(f"**{title}** could not start: {safe_markdown(message)}",
                                   alert_type="danger", width=700)


def _initial(state: AppState) -> None:
    """Apply the URL's app-level values before building (theme needs them first).
    Refused values are left: :func:`dashboard.share.sync_url` names them later."""
    values, _ = read_link(state, APP_KEYS, link_args())
    state.param.update(**values)


def _follow(source, name: str, target, attr: str) -> None:
    """``target.attr`` follows ``source.name`` (a plain watcher). Not Panel's ``link``: its
    callback asks ``sys.modules["holoviews"].streams``, which fails while the warm-up
    thread is still importing HoloViews, as the first page's callbacks arrive."""
    source.param.watch(lambda event: setattr(target, attr, event.new), name)


def _nilearn_note() -> str:
    """The sidebar's line on the server's nilearn data folder (``serve --data DIR``): the
    datasets found there, by name (never the server's path)."""
    from analysis.config import nilearn_data_dir
    from analysis.datasets.found import found_datasets

    found = found_datasets(nilearn_data_dir())
    if not found:
        return ""
    names = ", ".join(info["dataset"] for info in found.values())
    return f"Real data (nilearn): **{safe_markdown(names)}**, in each tab's Data menu.  \n"


def create_app(size: str | None = None) -> pn.template.BootstrapTemplate:
    """The whole app for one session."""
    if size is not None:
        os.environ["FMRI_EXPLORER_SIZE"] = size
    state = AppState()
    _initial(state)
    # Tabs are built on first visit: a session pays only for what it looks at.
    holders = [loading("tab-loading") for _ in TABS]
    viewers: dict = {}
    doc = pn.state.curdoc
    atlas_box = pn.Column(margin=0, css_classes=["atlas-box"])
    announcer = Announcer(css_classes=["announcer"], margin=0, width=1, height=1)

    def atlas_choice():
        """The session's atlas choice and its selector (once, before the first tab)."""
        if len(atlas_box) == 0:
            from dashboard.clusters import (ATLAS_URL_KEYS, AtlasChoice, atlas_selector,
                                            session_atlas)

            choice = session_atlas(doc) or AtlasChoice()
            sync_url(choice, ATLAS_URL_KEYS)
            atlas_box[:] = [atlas_selector(choice, doc=doc)]

    page = {"loaded": False}

    def resend_sizes():
        """The figures' themed text sizes sent again (dashboard/render/theme.py: a figure
        the page got before its document's theme kept Bokeh's own sizes)."""
        if state.present or state.theme == "dark":
            with batched():
                resend_text_sizes(doc, present=state.present)

    def build(key: str):
        """The tab's viewer, built (once) on demand."""
        atlas_choice()
        if key not in viewers:
            index = TAB_KEYS.index(key)
            viewer, pane = _tab(*TABS[index])
            viewers[key] = viewer
            announce_summaries(announcer, viewer)   # read out by screen readers
            for v in session_viewers():
                _remember_height(v)
                v.plot_height = (_present_height if state.present else _normal_height)(
                    v, state.window_width)
            holders[index][:] = [pane]
            if served and page["loaded"] and (state.present or state.theme == "dark"):
                # the new figures' themed text sizes, once the page has them
                doc.add_next_tick_callback(resend_sizes)
        return viewers[key]

    served = doc is not None and doc.session_context is not None
    if served:  # a closed session's memory goes back to the system (dashboard/jobs.py)
        # (bound now: `panel serve` runs this file as a module it discards after the page)
        # and once no session is left, the stores go back to their warm entries
        jobs.session_started()
        pn.state.on_session_destroyed(lambda ctx, ended=jobs.session_ended: ended())
        # what the process' stores keep for this session alone (its uploads) goes with it
        pn.state.on_session_destroyed(
            lambda ctx, owner=jobs.session_key(doc), release=store.release: release(owner))
    if served and state.present:
        # presenting: the views are sized to the window's width, which the page sends
        # as it draws (views cannot shrink once drawn): build the tab when it has arrived
        # (or after a second). Otherwise, on a warm server, the tab is built with the page
        # (one message: faster than the page and then the tab).
        waiting = {"width": False}

        def first_build():
            if not state.window_width and not waiting["width"]:
                waiting["width"] = True
                doc.add_timeout_callback(first_build, 1000)
                return
            if state.tab not in viewers:
                with batched():  # one model-graph walk, one message
                    build(state.tab)
            warmup.page_loaded()

        def width_arrived(event):
            if waiting["width"] and state.tab not in viewers:
                first_build()

        state.param.watch(width_arrived, "window_width")
        pn.state.onload(first_build)
    elif served and state.tab == "encoding" and warmup.first_page_pending():
        # the server has just started and its warm-up thread is still loading what the
        # Encoding tab's first message needs: send the page now (the browser loads its
        # scripts meanwhile, on its own core) and build the tab as soon as that is loaded
        # (polled on the event loop: at most WAIT_FIRST_PAGE seconds) and the page has
        # its document. Not before: a change made while the page's request for its
        # document is answered can reach the page ahead of that answer, which drops it
        # (BokehJS ignores patches before it has a document), and the page then meets
        # the tab's models as unknown references, its tab never drawn (seen once in
        # seven cold starts when the polling began with the session).
        started = time.monotonic()
        poll = {}

        def build_when_ready():
            if not warmup.FIRST_PAGE_READY.is_set() \
                    and time.monotonic() - started < WAIT_FIRST_PAGE:
                return
            if "callback" in poll:
                doc.remove_periodic_callback(poll.pop("callback"))
            if state.tab not in viewers:
                with batched():  # one model-graph walk, one message
                    build(state.tab)

        def page_has_its_document():
            warmup.page_loaded()
            build_when_ready()
            if state.tab not in viewers:
                poll["callback"] = doc.add_periodic_callback(build_when_ready, 30)

        pn.state.onload(page_has_its_document)
    else:
        build(state.tab)
        if served:
            pn.state.onload(warmup.page_loaded)
    tabs = pn.Tabs(*[(title, holder) for (title, _, _), holder in zip(TABS, holders)],
                   dynamic=True, css_classes=["analysis-tabs"], sizing_mode="stretch_width",
                   active=TAB_KEYS.index(state.tab))

    def tab_from_widget(event):
        # one model-graph walk and one message for the new tab: its URL keys too (one
        # address the page sends back, not one per section: each costs the session a
        # turn of the event loop before the visitor's next move is read). Its peaks
        # table may get new columns before the page has built it: StyleSheetGuard's
        # table guard (dashboard/render/browser.py) holds them until it is built.
        with batched():
            build(TAB_KEYS[event.new])
            state.tab = TAB_KEYS[event.new]

    def tab_to_widget(event):
        tabs.active = TAB_KEYS.index(event.new)

    tabs.param.watch(tab_from_widget, "active")
    state.param.watch(tab_to_widget, "tab")

    present = pn.widgets.Toggle(label="Present", value=state.present, color="primary",
                                css_classes=["present-toggle"], width=110)
    present.jscallback(value=TOGGLE_JS.replace("cb_obj.active", "cb_obj.value"))
    _follow(present, "value", state, "present")

    def enlarge(event=None):
        for viewer in session_viewers():
            _remember_height(viewer)
            if state.present:
                viewer.plot_height = _present_height(viewer, state.window_width)
            else:   # the tab's own height, less on a narrow window
                viewer.plot_height = _normal_height(viewer, state.window_width)

    def retheme(event=None):
        """The figures' text sizes follow the layout (dashboard/render/theme.py)."""
        if served:
            with batched():
                set_figure_theme(doc, state.theme, roots=[tabs], present=state.present)

    def present_changed(event):
        retheme()   # first: the views drawn anew below take the new theme's text sizes
        enlarge(event)

    state.param.watch(present_changed, ["present"])
    state.param.watch(enlarge, ["window_width"])
    window_width = WindowWidth(collapse_below=0 if state.present else NARROW_WINDOW)
    _follow(window_width, "width_px", state, "window_width")
    guard = StyleSheetGuard()  # see dashboard/render/browser.py: repaints cost half a move
    keys = ViewKeys(width=0, height=0, margin=0)   # the views from the keyboard
    route_keys(keys, session_viewers)
    # The theme switches in place (dashboard/render/theme.py): no reload, so the session's
    # widgets, uploads and results stay; the URL's `theme` follows (a link opens in it).
    theme = pn.widgets.Button(label="Dark / light", css_classes=["theme-toggle"], width=110)
    page_theme = PageTheme(theme=state.theme)
    theme.on_click(lambda event: setattr(
        state, "theme", "default" if state.theme == "dark" else "dark"))

    def theme_changed(event):
        if served:
            with batched():  # one message: stylesheets, figures and the page's theme
                switch_theme(doc, event.new, roots=[tabs], present=state.present)
                page_theme.theme = event.new
        else:
            page_theme.theme = event.new

    state.param.watch(theme_changed, "theme")

    # No template busy spinner: Panel turns it on and off around every event, which cost the
    # server 30 ms a slider move (half of it) and the page, animating it, 150 ms of its 250 ms
    # (measured in headless Chromium). Long work shows its own progress, and panes being
    # recomputed show Panel's loading indicator.
    template = pn.template.BootstrapTemplate(
        title="fmri-explorer", busy_indicator=None,
        theme="dark" if state.theme == "dark" else "default",
        collapsed_sidebar=state.present, sidebar_width=260,
        header=[pn.Row(present, theme, window_width, guard, keys, page_theme, announcer,
                       margin=(0, 10))],
        sidebar=[pn.pane.Markdown(
            "**Encoding** (Miyawaki 2008): ridge from 10x10 images to voxels.  \n"
            "**Decoding** (Haxby 2001): linear SVC across categories.  \n"
            "**Connectivity**: seed-to-voxel correlation; click to move the seed.\n\n"
            f"Synthetic data: **{default_size()}** size.  \n" + _nilearn_note() +
            "Parameters are kept in the URL: copy it to share this view."), atlas_box],
        main=[tabs])
    if state.present:
        template.config.raw_css.append(PRESENT_CSS)
    sync_url(state, APP_KEYS)
    if state.present:
        enlarge()
    if served and (state.present or state.theme == "dark"):
        # the figures' text sizes (larger presenting; the dark design's own are larger
        # than the light one's), once the page has its document's theme
        pn.state.onload(retheme)
        pn.state.onload(resend_sizes)
    if served:
        pn.state.onload(lambda: page.update(loaded=True))
    template.app_state = state
    template.tabs = tabs
    template.tab_viewers = viewers  # filled as tabs are built
    template.announcer = announcer  # the screen readers' live region (dashboard/a11y.py)
    template.build_tab = build
    template.window_width = window_width
    template.stylesheet_guard = guard
    return template


if __name__.startswith("bokeh_app"):  # run by `panel serve` (pn.state.served walks the stack)
    from dashboard import security

    security.install()  # once per process; `fmri-explorer serve` has installed it (--setup)
    warmup.start()  # once per process; `fmri-explorer serve` has started it already (--setup)
    local_stylesheets()
    # one walk of the model graph when the page is made, not one per root the template adds
    with pn.state.curdoc.models.freeze():
        create_app().servable(title="fmri-explorer")
    local_stylesheets()
