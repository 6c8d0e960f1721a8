"""Shareable links: a URL query reproduces a view; a change shows in the URL; a
query naming a file path is ignored."""

from urllib.parse import parse_qs, urlparse

from analysis.decoding import DecodingAnalysis
from analysis.encoding import EncodingAnalysis
from tests.browser.conftest import open_page
from tests.browser.helpers import model_value, set_model_value, wait_text

from dashboard.encoding import URL_KEYS as ENC  # noqa: E402 - parameter -> query key


def _query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_encoding_link_round_trip(page, app_url, encoding_dir):
    expected = EncodingAnalysis(size="small", alpha=10.0, n_folds=5, threshold=0.1).summary()
    open_page(page, app_url + f"?tab=encoding&{ENC['alpha']}=10.0&{ENC['n_folds']}=5"
                              f"&{ENC['threshold']}=0.1")
    assert wait_text(page, ".summary", lambda t: t == expected) == expected
    assert float(model_value(page, "alpha-slider")) == 1.0  # log10(alpha)
    set_model_value(page, "alpha-slider", 3.0)
    wait_text(page, ".summary", lambda t: t.startswith("alpha=1000 "))
    page.wait_for_function("() => window.location.search.includes('1000')", timeout=30_000)
    assert float(_query(page)[ENC["alpha"]]) == 1000.0
    assert _query(page)["tab"] == "encoding"


def test_decoding_link_round_trip(page, app_url, decoding_dir):
    from dashboard.decoding import SYNTHETIC, _dataset

    data = _dataset(SYNTHETIC)
    expected = DecodingAnalysis(data, cv="kfold", n_folds=4, C=0.1).summary()
    open_page(page, app_url + "?tab=decoding&dec_cv=kfold&dec_n_folds=4&dec_C=0.1")
    assert wait_text(page, ".summary", lambda t: t == expected) == expected
    assert model_value(page, "cv-select").strip('"') == "kfold"
    set_model_value(page, "cv-select", "run")
    wait_text(page, ".summary", lambda t: "leave-one-run-out" in t)
    page.wait_for_function("() => window.location.search.includes('dec_cv=run')",
                           timeout=30_000)
    assert _query(page)["dec_C"] == "0.1"


def test_a_file_path_in_the_url_is_ignored(page, app_url, decoding_dir):
    from dashboard.decoding import SYNTHETIC, _dataset

    default = DecodingAnalysis(_dataset(SYNTHETIC)).summary()
    open_page(page, app_url + "?tab=decoding&dec_mask=/etc/passwd&source=/etc/passwd"
                              "&dec_data=../../etc/passwd&theme=/etc/passwd")
    assert wait_text(page, ".summary", lambda t: t == default) == default
    assert model_value(page, "mask-select").strip('"') == "ventral-temporal"
    # the values were refused, not used: the session still works on its own data
    set_model_value(page, "cv-select", "kfold")
    wait_text(page, ".summary", lambda t: "KFold" in t)
