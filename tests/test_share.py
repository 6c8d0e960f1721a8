"""A shared link is untrusted input: its values are parsed and checked one by one
(dashboard/share.py), and whatever the page shows of them is escaped
(dashboard/notify.py). Headless: no server, no browser."""

from __future__ import annotations

import param
import pytest

from dashboard import notify, share
from dashboard.export import code_block
from dashboard.share import (MAX_VALUE_CHARS, ignored_message, link_args, parse_value,
                             read_link, within)

XSS = '<img src=x onerror="window.__xss=1">'


class Model(param.Parameterized):
    tab = param.Selector(default="encoding", objects=["encoding", "decoding", "connectivity"])
    present = param.Boolean(default=False)
    alpha = param.Number(default=100.0, bounds=(0, None), inclusive_bounds=(False, True))
    n_folds = param.Integer(default=5, bounds=(2, 10000))
    voxel = param.Integer(default=None, allow_None=True, bounds=(0, None))
    seed = param.NumericTuple(default=(0.0, -52.0, 18.0), length=3)
    conditions = param.ListSelector(default=["face", "cat"], objects=["face", "cat", "house"])
    note = param.String(default="")


KEYS = {"tab": "tab", "present": "present", "alpha": "enc_alpha", "n_folds": "enc_n_folds",
        "voxel": "enc_voxel", "seed": "conn_seed", "conditions": "dec_conditions"}


@pytest.mark.parametrize("name, raw, expected", [
    ("tab", "decoding", "decoding"),
    ("tab", '"decoding"', "decoding"),            # Panel's older links quoted strings
    ("present", "true", True), ("present", "1", True), ("present", "False", False),
    ("alpha", "10.0", 10.0), ("alpha", "1e3", 1000.0), ("alpha", " 0.5 ", 0.5),
    ("n_folds", "5", 5), ("n_folds", "7.0", 7),
    ("voxel", "12", 12),
    ("seed", "[0, -52, 18]", (0.0, -52.0, 18.0)), ("seed", "28,-20,18.5", (28.0, -20.0, 18.5)),
    ("conditions", '["face", "house"]', ["face", "house"]), ("conditions", "cat,face", ["cat", "face"]),
    ("conditions", "['face', 'house']", ["face", "house"]),   # as Panel writes a changed list
    ("seed", "[6.0, -52, 18]",
     (6.0, -52.0, 18.0)),
    ("voxel", "null", None), ("voxel", "None", None),         # no voxel chosen yet
])
def test_valid_values_parse(name, raw, expected):
    assert parse_value(Model.param[name], raw) == expected


@pytest.mark.parametrize("name, raw", [
    ("tab", XSS), ("tab", "/etc/passwd"), ("tab", ""),
    ("present", XSS), ("present", "maybe"),
    ("alpha", XSS), ("alpha", "nan"), ("alpha", "inf"), ("alpha", "-1"), ("alpha", "0"),
    ("alpha", "1e999"), ("alpha", "1_000"), ("alpha", "0x10"), ("alpha", "[1]"),
    ("n_folds", "1"), ("n_folds", "2.5"), ("n_folds", "1e3"), ("n_folds", "99999"),
    ("voxel", "-1"), ("voxel", "abc"),
    ("seed", "[0, 1]"), ("seed", '[0, "x", 1]'), ("seed", "[0, NaN, 1]"), ("seed", "[true, 0, 1]"),
    ("seed", '{"a": 1}'),
    ("conditions", '["face", "face"]'), ("conditions", '["face", "dog"]'), ("conditions", XSS),
    ("conditions", '[["face"], "cat"]'), ("conditions", '{"face": 1}'),
    ("conditions", "['face', __import__('os')]"), ("conditions", "['face'] + ['cat']"),
    ("alpha", "null"),                                      # a number that may not be None
])
def test_invalid_values_are_refused(name, raw):
    with pytest.raises(ValueError):
        parse_value(Model.param[name], raw)


def test_a_long_value_is_refused_before_parsing(monkeypatch):
    digits = "9" * 5000
    calls = []
    monkeypatch.setattr(share, "_integer", lambda text: calls.append(text) or 1)
    with pytest.raises(ValueError, match=f"longer than {MAX_VALUE_CHARS}"):
        parse_value(Model.param["n_folds"], digits)
    assert calls == []  # never parsed
    with pytest.raises(ValueError, match="longer than"):
        parse_value(Model.param["alpha"], "1" + "0" * 250)


def test_free_text_parameters_are_never_parsed():
    with pytest.raises(ValueError):
        parse_value(Model.param["note"], "hello")
    with pytest.raises(TypeError):
        share.check_whitelist(Model(), {"note": "note"})


def test_read_link_keeps_the_valid_values_and_names_the_refused_ones():
    m = Model()
    args = {"tab": XSS, "present": "true", "enc_alpha": "200000", "enc_n_folds": "4",
            "enc_voxel": "99999999", "dec_conditions": '["cat"]', "unrelated": "x"}
    rules = {"alpha": within(1e-2, 1e5), "voxel": within(0, 99),
             "conditions": share.at_least_two}
    values, refused = read_link(m, KEYS, args, rules)
    assert values == {"present": True, "n_folds": 4}
    assert set(refused) == {"tab", "enc_alpha", "enc_voxel", "dec_conditions"}
    assert refused["tab"][0] == XSS
    message = ignored_message(refused)
    assert message.startswith("ignored from the link: ") and XSS in message
    for key in refused:
        assert f"{key}=" in message


def test_read_link_skips_values_already_in_use():
    values, refused = read_link(Model(), KEYS, {"tab": "encoding", "enc_n_folds": "5"})
    assert values == {} and refused == {}


def test_class_rules_apply_without_being_passed():
    class DecodingAnalysis(param.Parameterized):
        conditions = param.ListSelector(default=["face", "cat"], objects=["face", "cat"])
        n_folds = param.Integer(default=5, bounds=(2, 10000))

    keys = {"conditions": "dec_conditions", "n_folds": "dec_n_folds"}
    _, refused = read_link(DecodingAnalysis(), keys,
                           {"dec_conditions": '["cat"]', "dec_n_folds": "10000"})
    assert set(refused) == {"dec_conditions", "dec_n_folds"}
    values, refused = read_link(DecodingAnalysis(), keys,
                                {"dec_conditions": '["cat", "face"]', "dec_n_folds": "6"})
    assert values == {"conditions": ["cat", "face"], "n_folds": 6} and not refused


def test_link_args_reads_the_raw_query():
    assert link_args("?tab=decoding&dec_conditions=%5B%22cat%22%5D&x=1&x=2") == {
        "tab": "decoding", "dec_conditions": '["cat"]', "x": "2"}
    assert link_args("?enc_alpha=" + "9" * 5000)["enc_alpha"] == "9" * 5000  # read, not parsed


def test_panels_location_parser_survives_a_long_number():
    from panel.io import location

    parsed = location.parse_query("?enc_alpha=" + "9" * 5000 + "&enc_n_folds=5&tab=decoding")
    assert parsed == {"enc_alpha": "9" * 5000, "enc_n_folds": 5, "tab": "decoding"}


def test_param_refusals_are_said_in_a_few_words():
    class Limits(param.Parameterized):
        radius = param.Number(default=8.0, bounds=(1.0, 20.0))
        subject = param.Integer(default=0, bounds=(0, 3))
        alpha = param.Number(default=1.0, bounds=(0, None), inclusive_bounds=(False, True))

    for name, raw, reason in [("radius", "0.5", "must be at least 1.0"),
                              ("subject", "99", "must be at most 3"),
                              ("alpha", "0", "must be greater than 0")]:
        with pytest.raises(ValueError, match=f"^{reason}$"):
            parse_value(Limits.param[name], raw)


def test_a_change_of_the_url_is_applied_through_the_same_checks():
    """Panel's Location applies the URL again when it changes (the page sends its address
    once loaded): the refused values stay refused, the valid ones apply."""
    from panel.io.location import Location

    m = Model()
    location = Location(search="?enc_n_folds=4")
    location._synced.append((m, KEYS, None, share._Rules({"voxel": within(0, 99)})))
    location.search = "?enc_n_folds=6&enc_voxel=99999999&enc_alpha=" + "9" * 5000 + "&tab=" + XSS
    assert (m.n_folds, m.voxel, m.alpha, m.tab) == (6, None, 100.0, "encoding")
    location.search = "?enc_voxel=12&present=true"
    assert (m.voxel, m.present) == (12, True)


# ---- escaping ------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    XSS, "<script>alert(1)</script>", "[x](javascript:alert(1))", "![i](http://evil/x.png)",
    "<javascript:alert(1)>", "`code` *em* ~~s~~ | a | b |", "a & b \\ c", "\"'",
])
def test_escape_leaves_no_markup(text):
    out = notify.escape(text)
    for c in "<>[]`*~|\\":
        assert c not in out
    assert "&" not in out.replace("&#", "")


def test_escaped_markdown_renders_as_the_text_itself():
    import html

    from markdown_it import MarkdownIt

    for text in [XSS, "[x](javascript:alert(1))", "*a* _b_ `c` ~~d~~", "sub-01_bold.nii.gz",
                 "face vs cat, SVC C=1, KFold(5): 0.741 (chance 0.5, train 1.0)"]:
        rendered = MarkdownIt("commonmark").render(notify.safe_markdown(text)).strip()
        assert rendered.startswith("<p>") and html.unescape(rendered[3:-4]) == text
        assert "<img" not in rendered and "<a" not in rendered and "<em>" not in rendered


def test_plain_text_is_unchanged():
    for text in ["face vs cat, SVC C=1, KFold(5): 0.741 (chance 0.5, train 1)",
                 "short_confounds.tsv: 3 confound rows for 6 volumes", "sub-01_bold.nii.gz"]:
        assert notify.escape(text) == text


def test_escape_cuts_long_text_and_drops_control_characters():
    out = notify.escape("9" * 5000)
    assert len(out) == notify.MAX_SHOWN + 1 and out.endswith("\u2026")
    assert notify.escape("a\x00b\x1bc\nd") == "abc\nd"


def test_notifications_are_escaped(monkeypatch):
    import panel as pn

    from analysis.errors import DataError

    shown = []

    class Notifications:
        def error(self, message, duration):
            shown.append(message)

        info = error

    monkeypatch.setattr(pn.state, "_notifications", {}, raising=False)
    monkeypatch.setattr(type(pn.state), "notifications", property(lambda self: Notifications()))
    notify.report_info(f"ignored from the link: tab={XSS}")
    message = notify.report_error(DataError("bad file", f"{XSS}.nii.gz"))
    assert XSS in message  # the plain text, for Str panes and logs
    assert len(shown) == 2 and all("<" not in m and ">" not in m for m in shown)
    import html

    assert shown[0].startswith('ignored from the link: tab=&#60;img src=x onerror="')
    assert html.unescape(shown[0]) == f"ignored from the link: tab={XSS}"


def test_code_block_cannot_be_closed_by_its_content():
    from markdown_it import MarkdownIt

    code = f"x = {XSS!r}\n```\n{XSS}\n````"
    rendered = MarkdownIt("commonmark").render(code_block(code))
    assert rendered.count("<pre>") == 1 and "<img" not in rendered
