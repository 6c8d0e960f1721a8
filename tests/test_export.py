"""Exports: NIfTI equals the map, PNG and HTML are valid files, the bar wires a tab."""

import gzip
import io
from html.parser import HTMLParser

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis.volumes import to_xarray
from dashboard.export import ExportBar, csv_bytes, html_report, nifti_bytes, slug, stat_map_png


@pytest.fixture
def volume():
    affine = np.array([[-4.0, 0, 0, 40], [0, 4.0, 0, -60], [0, 0, 4.0, -20], [0, 0, 0, 1]])
    data = np.random.default_rng(0).standard_normal((12, 14, 10))
    data[0] = np.nan  # outside the mask
    return to_xarray(nib.Nifti1Image(data, affine), name="r")


class FakeTab:
    def __init__(self, da):
        self.da = da

    def export_map(self):
        return {"map": self.da, "background": self.da.fillna(0).__abs__(), "title": "r map",
                "threshold": 0.5, "symmetric": True}

    def export_scores(self):
        return pd.DataFrame({"fold": [0, 1], "accuracy": [0.75, 0.8]})

    def export_summary(self):
        return "face vs cat: 0.775"

    def export_params(self):
        return {"C": 1.0, "cv": "run"}

    def export_code(self):
        return "print('hello')"


def test_nifti_export_equals_the_map(volume):
    img = nib.Nifti1Image.from_bytes(gzip.decompress(nifti_bytes(volume)))
    data = img.get_fdata()
    expected = np.nan_to_num(volume.values)
    np.testing.assert_allclose(data, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(img.affine, volume.attrs["affine"])


def test_png_is_a_slide_sized_image(volume):
    png = stat_map_png(volume, volume.fillna(0), title="r map", threshold=0.5)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size[0] >= 1200 and image.size[1] >= 400
    assert len(set(np.asarray(image.convert("L")).ravel().tolist())) > 10  # not blank


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.srcs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.srcs += [v for k, v in attrs if k in ("src", "href")]


def test_html_report_is_one_offline_file(volume):
    png = stat_map_png(volume)
    text = html_report("Decoding", {"C": 1}, "face vs cat: 0.775", figures=[("map", png)],
                       tables=[("Scores", pd.DataFrame({"a": [1.0]}))], code="x = 1")
    parser = _Collect()
    parser.feed(text)
    assert {"html", "table", "img", "pre"} <= set(parser.tags)
    # every resource is inline: nothing to fetch
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert "face vs cat: 0.775" in text


def test_export_bar_builds_every_file(volume):
    bar = ExportBar(source=FakeTab(volume), stem=slug("decoding face/cat"))
    assert bar.stem == "decoding_face_cat"
    assert nib.Nifti1Image.from_bytes(gzip.decompress(bar.content("nii.gz"))).shape == volume.shape
    assert bar.content("png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(io.BytesIO(bar.content("csv")))["accuracy"].tolist() == [0.75, 0.8]
    assert b"face vs cat: 0.775" in bar.content("html")
    assert bar.content("py") == b"print('hello')"


def test_each_button_downloads_the_bars_content(volume):
    import panel as pn

    bar = ExportBar(source=FakeTab(volume), stem="scores")
    buttons = {b.filename: b for b in bar.__panel__().select(pn.widgets.FileDownload)}
    assert sorted(buttons) == sorted(f"scores.{kind}" for kind in ExportBar.FILES)
    for kind in ("csv", "py"):
        assert buttons[f"scores.{kind}"].callback().getvalue() == bar.content(kind)
    with pytest.raises(ValueError, match="no export of kind 'xlsx'"):
        bar.content("xlsx")


def test_csv_bytes_round_trip():
    df = pd.DataFrame({"voxel": [0, 1], "r2": [0.1, -0.2]})
    assert pd.read_csv(io.BytesIO(csv_bytes(df))).equals(df)
