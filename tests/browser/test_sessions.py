"""Several sessions at once: each gets its own correct result; one session's
failure stays in that session (a notification) and the others keep working."""


import pytest

from analysis.decoding import DecodingAnalysis
from tests.browser.conftest import open_page
from tests.browser.helpers import set_model_value, text_of, wait_text

SETTINGS = [  # (widget css class, widget value, analysis parameters)
    ("cv-select", "KFold", {"cv": "kfold"}),
    ("classifier-select", "logistic regression", {"classifier": "logistic"}),
    ("mask-select", None, {}),  # untouched session: the defaults
]


@pytest.fixture
def expected(decoding_dir):
    from dashboard.decoding import SYNTHETIC, _dataset

    data = _dataset(SYNTHETIC)
    return [DecodingAnalysis(data, **params).summary() for _, _, params in SETTINGS]


def _session(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = open_page(context.new_page(), url)
    wait_text(page, ".summary", lambda t: "vs" in t)
    return context, page


def test_three_sessions_change_parameters_at_once(browser, app_url, expected):
    url = app_url + "?tab=decoding"
    sessions = [_session(browser, url) for _ in SETTINGS]
    try:
        before = [text_of(page, ".summary") for _, page in sessions]
        assert len(set(before)) == 1  # all start from the same defaults
        # all three change at once (the server handles them concurrently)
        for (_, page), (css, value, _) in zip(sessions, SETTINGS):
            if value is not None:
                set_model_value(page, css, value)
        for (_, page), want in zip(sessions, expected):
            assert wait_text(page, ".summary", lambda t, w=want: t == w) == want
        assert len(set(expected)) == 3  # the sessions really differ
    finally:
        for context, _ in sessions:
            context.close()


def test_a_failing_callback_stays_in_its_session(browser, app_url, expected):
    url = app_url + "?tab=decoding"
    (ctx_a, page_a), (ctx_b, page_b) = _session(browser, url), _session(browser, url)
    try:
        default = text_of(page_a, ".summary")
        # session A asks for the impossible: one condition only
        set_model_value(page_a, "conditions-select", ["face"])
        toast = page_a.locator(".notyf__toast").first
        toast.wait_for(state="visible", timeout=30_000)
        assert "two conditions" in toast.inner_text()
        assert text_of(page_a, ".summary") == default  # the last good result stays
        # session B saw nothing of it and keeps working
        assert page_b.locator(".notyf__toast").count() == 0
        set_model_value(page_b, "cv-select", "KFold")
        assert wait_text(page_b, ".summary", lambda t: t == expected[0]) == expected[0]
        # and session A recovers
        set_model_value(page_a, "classifier-select", "logistic regression")
        assert wait_text(page_a, ".summary", lambda t: "LogisticRegression" in t)
    finally:
        ctx_a.close()
        ctx_b.close()
