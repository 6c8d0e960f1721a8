"""Maps written to files are on the input data's own grid and affine (issue 16 item 4):
on an oblique int16 scan, ``connectivity --out`` and the Connectivity model's NIfTI
export write what nilearn's ``inverse_transform`` writes, never the display's
resampled axis-aligned grid."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from analysis import connectivity as C
from analysis.cli import main
from analysis.connectivity.reference import reference_seed_map
from analysis.datasets import development as dev

SEED = (0.0, -52.0, 18.0)


@pytest.fixture(scope="module")
def oblique(connectivity_dir, tmp_path_factory):
    """Subject 0 as an int16 scan with an oblique affine (12 degrees about x)."""
    files = dev.subject_files(connectivity_dir, subject=0)
    img = nib.load(files["func"])
    data = img.get_fdata()
    scaled = np.round((data - data.mean()) / data.std() * 50 + 500).astype(np.int16)
    a = np.deg2rad(12)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    affine = rotation @ img.affine
    out = nib.Nifti1Image(scaled, affine)
    out.header.set_xyzt_units("mm", "sec")
    out.header["pixdim"][4] = files["t_r"]
    path = tmp_path_factory.mktemp("oblique") / "oblique_int16_bold.nii.gz"
    nib.save(out, path)
    return path, files["confounds"]


def _check_grid(written: nib.Nifti1Image, source: nib.Nifti1Image):
    assert written.shape == source.shape[:3]
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-6)


def test_connectivity_out_is_on_the_oblique_datas_grid(oblique, tmp_path, capsys):
    func, confounds = oblique
    source = nib.load(func)
    assert not np.allclose(source.affine[:3, :3], np.diag(np.diag(source.affine[:3, :3])))
    out = tmp_path / "r_map.nii.gz"
    assert main(["connectivity", "--func", str(func), "--confounds", str(confounds),
                 "--seed", *map(str, SEED), "--json", "--out", str(out)]) == 0
    json.loads(capsys.readouterr().out)
    written = nib.load(out)
    _check_grid(written, source)
    # the values: the seed pipeline's r, unmasked by its own brain masker
    r, masker = reference_seed_map(func, SEED, 8.0, confounds=str(confounds))
    expected = masker.inverse_transform(r).get_fdata()
    np.testing.assert_allclose(written.get_fdata(), np.nan_to_num(expected), atol=1e-5)


def test_the_models_nifti_export_is_on_the_datas_grid(oblique):
    func, confounds = oblique
    sc = C.SeedConnectivity.from_files(func, confounds=confounds)
    for fisher_z in (False, True):
        img = sc.to_nifti(fisher_z=fisher_z)
        _check_grid(img, nib.load(func))
        assert img.get_data_dtype() == np.float32
    r = sc.to_nifti(fisher_z=False).get_fdata()
    z = sc.to_nifti(fisher_z=True).get_fdata()
    inside = r != 0
    np.testing.assert_allclose(z[inside], np.arctanh(r[inside]), rtol=1e-5, atol=1e-6)
    # the display resamples the oblique data to an axis-aligned grid; the file does not
    assert sc.r_map().shape != img.shape or not np.allclose(
        np.diag(np.diag(img.affine[:3, :3])), img.affine[:3, :3])


def _rotated(path, out, degrees=12):
    img = nib.load(path)
    a = np.deg2rad(degrees)
    rotation = np.eye(4)
    rotation[0:2, 0:2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), rotation @ img.affine, img.header), out)
    return out


def test_decoding_weights_are_written_on_the_oblique_datas_grid(decoding_dir, tmp_path, capsys):
    import gzip

    from analysis.decoding import DecodingAnalysis
    from dashboard.decoding import DecodingTab
    from dashboard.export import ExportBar

    subj = decoding_dir / "haxby2001" / "subj2"
    func = _rotated(subj / "bold.nii.gz", tmp_path / "bold.nii.gz")
    mask = _rotated(subj / "mask4_vt.nii.gz", tmp_path / "mask.nii.gz")
    plain = DecodingAnalysis.from_files(subj / "bold.nii.gz", subj / "mask4_vt.nii.gz",
                                        subj / "labels.txt")
    oblique = DecodingAnalysis.from_files(func, mask, subj / "labels.txt")
    img = oblique.to_nifti("weights")
    _check_grid(img, nib.load(func))
    # masking does not depend on the affine: the same weights, on the data's own grid
    np.testing.assert_allclose(img.get_fdata(), plain.to_nifti("weights").get_fdata())
    out = tmp_path / "weights.nii.gz"
    assert main(["decoding", "--func", str(func), "--mask", str(mask), "--labels",
                 str(subj / "labels.txt"), "--conditions", "face", "cat", "--json",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    _check_grid(nib.load(out), nib.load(func))
    # the app's NIfTI export too
    tab = DecodingTab(analysis=oblique)
    exported = nib.Nifti1Image.from_bytes(gzip.decompress(
        ExportBar(source=tab, stem="decoding").content("nii.gz")))
    _check_grid(exported, nib.load(func))
    np.testing.assert_allclose(exported.get_fdata(), img.get_fdata(), rtol=1e-6)
