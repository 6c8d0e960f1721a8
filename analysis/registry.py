"""Registries of variants: one entry a choice, as himalaya's solvers (issue 14).

A :class:`Registry` maps a key (what the widgets, CLI options and URLs carry,
e.g. ``"kfold"``) to a spec (everything the code needs to know about that
variant). Code asks the registry for the spec instead of branching on the key,
so adding a variant is one :meth:`Registry.register` call in one place.
Watchers (:meth:`Registry.watch`) keep tables derived from a registry (a
widget's options, a parameter's objects) in step when an entry is added or
removed.

:data:`CV_SPECS` holds the cross-validation schemes that encoding and decoding
share; the decoding's classifiers are in :mod:`analysis.decoding.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import DataError


class Registry(Mapping):
    """Key -> spec, in the order of registration; read-only except through
    :meth:`register` and :meth:`unregister`, which tell the watchers."""

    def __init__(self, kind: str):
        self.kind = kind          # "CV scheme", "classifier": for error messages
        self._specs: dict = {}
        self._watchers: list = []

    def __getitem__(self, key):
        return self._specs[key]

    def __iter__(self):
        return iter(self._specs)

    def __len__(self):
        return len(self._specs)

    def __contains__(self, key):
        try:
            return key in self._specs
        except TypeError:  # unhashable: not a key
            return False

    def spec(self, key):
        """The spec of ``key``; a :class:`DataError` naming the choices if unknown."""
        try:
            return self._specs[key]
        except (KeyError, TypeError):
            keys = list(self._specs)
            choices = ", ".join(keys[:-1]) + " or " + keys[-1] if len(keys) > 1 else "".join(keys)
            raise DataError(f"unknown {self.kind} {key!r}; choose {choices}") from None

    def register(self, key: str, spec) -> None:
        """Add (or replace) the variant ``key``; the watchers are told."""
        self._specs[key] = spec
        self._notify()

    def unregister(self, key: str) -> None:
        """Remove the variant ``key`` (e.g. a test's); the watchers are told."""
        del self._specs[key]
        self._notify()

    def watch(self, callback: Callable[["Registry"], None]) -> None:
        """Call ``callback(registry)`` now and after every change."""
        self._watchers.append(callback)
        callback(self)

    def _notify(self) -> None:
        for callback in self._watchers:
            callback(self)


@dataclass(frozen=True)
class CVSpec:
    """A cross-validation scheme.

    ``splitter(n_folds)`` is the scikit-learn splitter; ``grouped``: it splits
    by the runs (passed as ``groups``), else ``n_folds`` sets the number of
    folds. ``title`` names it in a summary (``{n_folds}`` filled in), ``label``
    in a widget. ``code`` is the splitter in an exported script (``N_FOLDS``
    the folds), ``imports`` the line it needs, ``note`` a comment beside it.
    """

    label: str
    title: str
    splitter: Callable
    grouped: bool
    code: str
    imports: str
    note: str = ""

    def name(self, n_folds: int) -> str:
        """The scheme in a summary, e.g. ``KFold(5)`` or ``leave-one-run-out``."""
        return self.title.format(n_folds=n_folds)


def _kfold(n_folds):
    from sklearn.model_selection import KFold

    return KFold(n_splits=n_folds)


def _leave_one_run_out(n_folds=None):
    from sklearn.model_selection import LeaveOneGroupOut

    return LeaveOneGroupOut()


#: the CV schemes of encoding and decoding (keys are contracts: CLI choices, URL keys)
CV_SPECS = Registry("CV scheme")
CV_SPECS.register("kfold", CVSpec(
    label="KFold", title="KFold({n_folds})", splitter=_kfold, grouped=False,
    code="KFold(n_splits=N_FOLDS)", imports="from sklearn.model_selection import KFold",
    note="unshuffled, as the tutorial"))
CV_SPECS.register("run", CVSpec(
    label="leave-one-run-out", title="leave-one-run-out", splitter=_leave_one_run_out,
    grouped=True, code="LeaveOneGroupOut()",
    imports="from sklearn.model_selection import LeaveOneGroupOut",
    note="each run held out in turn"))
