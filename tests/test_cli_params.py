"""The CLI's options are checked against the Param classes (issue 14): every option
named after a parameter has that parameter's default, so no default is written twice
with two values. The exceptions are deliberate and listed."""

from __future__ import annotations

import pytest

#: options whose CLI default differs from the parameter's on purpose
DELIBERATE = {
    # a batch run does no permutation test unless asked (the app's button runs 100)
    ("decoding", "n_permutations"),
}


def _classes():
    from analysis.connectivity import SeedConnectivity
    from analysis.decoding import DecodingAnalysis
    from analysis.encoding import EncodingAnalysis
    from analysis.group import GroupConnectivity

    return {"encoding": EncodingAnalysis, "decoding": DecodingAnalysis,
            "connectivity": SeedConnectivity, "group": GroupConnectivity}


@pytest.mark.parametrize("command", ["encoding", "decoding", "connectivity", "group"])
def test_cli_defaults_are_the_parameters_defaults(command):
    from analysis.cli import build_parser

    cls = _classes()[command]
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and command in a.choices)
    checked = 0
    for action in sub.choices[command]._actions:
        name = action.dest
        if name == "name" or name not in cls.param or action.default is None:
            continue        # None: "not given", the parameter's default applies
        checked += 1
        if (command, name) in DELIBERATE:
            assert action.default != cls.param[name].default
            continue
        assert action.default == cls.param[name].default, (command, name)
    assert checked >= 4, f"{command}: only {checked} options named after parameters"
