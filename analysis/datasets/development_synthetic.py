"""The synthetic development-like dataset on disk: :func:`generate` and reading its truth.

Writes the subjects drawn from :mod:`.development_signal` in
``fetch_development_fmri``'s layout (4D images, fMRIPrep-style and reduced
confounds, ``participants.tsv``), the brain mask and the planted truth
(:func:`read_truth`, :func:`network_time_courses`) and describes the folder
(:func:`describe`); :mod:`analysis.datasets.development` re-exports every
name here.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..atomic import atomic_dir, ensure_writable_dir
from ..config import check_size
from ..progress import null_progress, scaled
from .development_signal import (BAND, FULL_COLUMNS, N_VOLUMES, PCC_MM, REDUCED_COLUMNS,
                                 SIZES, T_R, _round_trip, participant_ids, shared_geometry,
                                 subject_params, subject_rng, synthesize_subject)

DATASET = "development_fmri"
FUNC = "{0}_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
CONFOUNDS = "{0}_task-pixar_desc-confounds_regressors.tsv"
REDUCED = "{0}_task-pixar_desc-reducedConfounds_regressors.tsv"
TRUTH = "synthetic_truth.json"
TRUTH_NPZ = "synthetic_truth.npz"
MASK = "synthetic_brain_mask.nii.gz"


def dataset_dir(data_dir) -> Path:
    return Path(data_dir) / DATASET


#: Bumped when what the generator plants changes: older synthetic data is made again.
GENERATOR_VERSION = 2


def is_present(data_dir) -> bool:
    """Every file ``fetch_development_fmri`` needs (for every subject) is in place,
    made by this version of the generator."""
    root = dataset_dir(data_dir)
    truth = root / TRUTH
    if not (truth.is_file() and (root / "participants.tsv").is_file()):
        return False
    try:
        planted = json.loads(truth.read_text())
        ids = [s["participant_id"] for s in planted["subjects"]]
    except (ValueError, KeyError, TypeError):
        return False
    if planted.get("generator_version") != GENERATOR_VERSION:
        return False
    return all((root / pattern.format(pid)).is_file()
               for pid in ids for pattern in (FUNC, CONFOUNDS, REDUCED))


def _header(shape, affine, zooms, t_r=None):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float32)
    hdr.set_data_shape(shape)
    hdr.set_zooms(tuple(float(z) for z in zooms) + ((float(t_r),) if t_r else ()))
    hdr.set_qform(affine, code=4)
    hdr.set_sform(affine, code=4)
    hdr.set_xyzt_units("mm", "sec")
    return hdr


# --------------------------------------------------------------------------- generate

def generate(data_dir, size: str = "full", seed: int = 0, progress=None,
             n_subjects: int | None = None) -> dict:
    """Write the development-like dataset in ``fetch_development_fmri``'s layout.

    Parameters
    ----------
    data_dir : path
        nilearn ``data_dir``; files go to ``data_dir/development_fmri``.
    size : {"full", "small"}
        ``full``: MNI152 at 4 mm (~29k brain voxels), 4 subjects; ``small``:
        6 mm (~8.7k voxels), 3 subjects. Both 168 volumes, TR 2 s.
    seed : int
        Random seed; the same seed gives the same arrays.
    progress : callable, optional
        ``progress(fraction, message)``.
    n_subjects : int, optional
        More (or fewer) subjects than the size's default (up to 155); the
        planted networks and the first subjects stay the same.

    Returns
    -------
    dict
        JSON-able description (paths, shapes, TR, participants).
    """
    size = check_size(size)
    spec = SIZES[size]
    progress = progress or null_progress
    n_subjects = spec["n_subjects"] if n_subjects is None else int(n_subjects)
    adults, children = participant_ids(n_subjects)
    ensure_writable_dir(data_dir)
    from . import claim_folder, write_manifest

    own = {"dataset": DATASET, "size": size, "seed": int(seed), "n_subjects": n_subjects}
    if claim_folder(dataset_dir(data_dir), own, lambda: is_present(data_dir), _legacy):
        progress(1.0, "already there")
        return describe(data_dir)
    progress(0.0, "geometry")

    geom = shared_geometry(size, seed)
    mask, affine, networks = geom["mask"], geom["affine"], geom["networks"]
    zooms = np.diag(affine)[:3]

    root_final = dataset_dir(data_dir)
    participants = []
    truth_subjects = []
    network_tcs = np.zeros((n_subjects, N_VOLUMES, len(networks)), np.float32)
    shape4 = mask.shape + (N_VOLUMES,)
    from concurrent.futures import ThreadPoolExecutor

    # the gzip writing of one subject (zlib releases the GIL) overlaps the next's synthesis
    with atomic_dir(root_final) as root, ThreadPoolExecutor(max_workers=1) as writer:
        root.mkdir(parents=True)
        ids = adults + children
        pending = None
        for s, pid in enumerate(ids):
            report = scaled(progress, 0.02 + 0.96 * s / n_subjects,
                            0.02 + 0.96 * (s + 1) / n_subjects)
            report(0.0, f"subject {s + 1}/{n_subjects} ({pid})")
            child = pid in children
            srng = subject_rng(seed, pid)
            params = subject_params(srng, pid, s, child)
            comps, conf, net_tc = synthesize_subject(geom, srng, params)
            network_tcs[s] = net_tc
            data = np.empty((N_VOLUMES, geom["n_vox"]))
            data[:] = geom["base"]
            for part in comps.values():
                data += part
            data = data.astype(np.float32)
            report(0.5, f"subject {s + 1}/{n_subjects}: writing")

            conf.insert(0, "global_signal", data.mean(axis=1, dtype=np.float64))
            conf = _round_trip(conf)[FULL_COLUMNS]
            conf.to_csv(root / CONFOUNDS.format(pid), sep="\t", index=False,
                        na_rep="n/a", float_format="%.10g")
            reduced = conf[REDUCED_COLUMNS].fillna({"framewise_displacement": 0.0})
            np.savetxt(root / REDUCED.format(pid), reduced.to_numpy(),
                       header="\t".join(REDUCED_COLUMNS), delimiter="\t", comments="")
            vol = np.zeros(shape4, np.float32)
            vol[mask] = data.T
            img = nib.Nifti1Image(vol, affine, _header(shape4, affine, zooms, T_R))
            if pending is not None:
                pending.result()
            pending = writer.submit(img.to_filename, str(root / FUNC.format(pid)))
            params["mean_fd"] = round(float(np.nanmean(conf["framewise_displacement"])), 4)
            truth_subjects.append(params)
            participants.append({
                "participant_id": pid, "Age": params["age"],
                "AgeGroup": "Adult" if not child else f"{int(params['age'])}yo",
                "Child_Adult": params["child_adult"],
                "Gender": "F" if srng.uniform() < 0.5 else "M",
                "Handedness": "R" if srng.uniform() < 0.9 else "L"})
            report(1.0, f"subject {s + 1}/{n_subjects} done")

        if pending is not None:
            pending.result()
        pd.DataFrame(participants).sort_values("participant_id").to_csv(
            root / "participants.tsv", sep="\t", index=False)
        nib.Nifti1Image(mask.astype(np.uint8), affine).to_filename(str(root / MASK))
        np.savez_compressed(root / TRUTH_NPZ, network_time_courses=network_tcs,
                            networks=np.array(networks))
        truth = {
            "generator": "fmri-explorer development-like synthetic data",
            "generator_version": GENERATOR_VERSION,
            "seed": seed, "size": size, "t_r": T_R, "n_volumes": N_VOLUMES,
            "shape": list(mask.shape), "resolution_mm": spec["resolution"],
            "n_brain_voxels": int(geom["n_vox"]), "band_hz": list(BAND), "pcc_mm": list(PCC_MM),
            "node_sigma_mm": spec["node_sigma"], "networks": networks,
            "within_network_coherence": {n: round(float(c), 4) for n, c in zip(networks, geom["within"])},
            "nodes": [{"x": float(x), "y": float(y), "z": float(z), "network": lab}
                      for (x, y, z), lab in zip(geom["node_xyz"], geom["node_net"])],
            "subjects": truth_subjects,
            "artefacts": {
                "confound_regression": ["motion (trans_*, rot_*)", "framewise displacement",
                                        "global signal and two physiological sources "
                                        "(span of a_comp_cor_00..05)"],
                "filtering": ["linear, quadratic and slow cosine drifts", "shared 0.13-0.24 Hz oscillation"],
            },
            "notes": "reducedConfounds: framewise_displacement first row n/a written as 0 "
                     "(nilearn's cleaning refuses NaN); network_time_courses in synthetic_truth.npz.",
        }
        (root / TRUTH).write_text(json.dumps(truth, indent=1))
        write_manifest(root, own)
    progress(1.0, "done")
    return describe(data_dir)


def _legacy(root) -> bool:
    """A folder this generator wrote before manifests existed (its planted truth inside)."""
    try:
        truth = json.loads((Path(root) / TRUTH).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(truth, dict) and str(truth.get("generator", "")).startswith("fmri-explorer")


# --------------------------------------------------------------------------- read

def read_truth(data_dir) -> dict | None:
    """The planted truth (``synthetic_truth.json``), or None for real data."""
    path = dataset_dir(data_dir) / TRUTH
    return json.loads(path.read_text()) if path.is_file() else None


def network_time_courses(data_dir) -> tuple[np.ndarray, list[str]]:
    """Planted network time courses ``(n_subjects, n_volumes, n_networks)`` and names."""
    with np.load(dataset_dir(data_dir) / TRUTH_NPZ) as npz:
        return npz["network_time_courses"], [str(n) for n in npz["networks"]]


def describe(data_dir) -> dict:
    """JSON-able description of the dataset under ``data_dir``."""
    root = dataset_dir(data_dir)
    truth = read_truth(data_dir)
    ids = [s["participant_id"] for s in truth["subjects"]] if truth else []
    first = nib.load(str(root / FUNC.format(ids[0]))) if ids else None
    return {
        "dataset": DATASET, "data_dir": str(Path(data_dir)),
        "n_subjects": len(ids), "participants": str(root / "participants.tsv"),
        "func": [str(root / FUNC.format(p)) for p in ids],
        "confounds": [str(root / REDUCED.format(p)) for p in ids],
        "confounds_full": [str(root / CONFOUNDS.format(p)) for p in ids],
        "shape": list(first.shape) if first is not None else None,
        "t_r": T_R, "n_brain_voxels": truth["n_brain_voxels"] if truth else None,
        "mask": str(root / MASK), "ground_truth": str(root / TRUTH) if truth else None,
    }
