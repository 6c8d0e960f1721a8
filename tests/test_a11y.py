"""The page's live region (dashboard/a11y.py): a tab's new summary line is read out by
screen readers, as plain text (markup dropped, user text not interpreted)."""

import panel as pn


def test_plain_drops_markup_and_keeps_the_words():
    from dashboard.a11y import plain

    assert plain("**face vs cat**: accuracy 0.86 &lt;b&gt;") == "face vs cat: accuracy 0.86 <b>"
    assert plain("<img src=x onerror=alert(1)>seed (0, -52, 18)") == "seed (0, -52, 18)"
    assert plain(None) == ""


def test_a_tabs_new_summary_is_announced(connectivity_dir):
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from dashboard import app
    from dashboard.a11y import Announcer, plain

    doc = Document()
    with set_curdoc(doc):
        template = app.create_app()
        tab = template.build_tab("connectivity")
    announcer = template.announcer
    assert isinstance(announcer, Announcer)
    assert [a for item in template.header for a in item.select(Announcer)] == [announcer]
    before = announcer.text
    tab.model.seed_mm = (40.0, -20.0, 30.0)       # a user's new seed: a new summary line
    assert tab.summary.object and announcer.text == plain(tab.summary.object)
    assert announcer.text != before and "40" in announcer.text
    assert isinstance(tab.summary, pn.pane.Markdown)
