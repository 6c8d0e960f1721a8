"""Development-like synthetic dataset (seed connectivity), several subjects.

Layout written by :func:`generate`, exactly what
``nilearn.datasets.fetch_development_fmri(n_subjects=N, data_dir=data_dir)``
reads, so the seed example runs unchanged on it and nothing is downloaded::

    data_dir/development_fmri/participants.tsv
    data_dir/development_fmri/<id>_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz
    data_dir/development_fmri/<id>_task-pixar_desc-confounds_regressors.tsv          fMRIPrep-style
    data_dir/development_fmri/<id>_task-pixar_desc-reducedConfounds_regressors.tsv   nilearn's reduced set
    data_dir/development_fmri/synthetic_truth.json, synthetic_truth.npz              planted truth
    data_dir/development_fmri/.fmri-explorer-synthetic.json   manifest: the files written (ours)
    data_dir/development_fmri/synthetic_brain_mask.nii.gz                            the MNI152 brain mask used

Participant ids are real ids of the study (the fetcher looks each one up in
its table of download keys): adults ``sub-pixar123`` ..., children
``sub-pixar001`` ...; about 21 % adults (the study's 33/155), at least one of
each for two or more subjects, so that ``n_subjects=1`` (one adult) and
``n_subjects=2`` (one adult, one child) select existing subjects.

Planted structure (shared by all subjects; sizes: ``full`` = MNI152 at 4 mm,
~29k brain voxels, 4 subjects; ``small`` = 6 mm, ~8.7k voxels, 3 subjects;
both 168 volumes, TR 2 s):

* **Networks** at the 300 ROIs of ``nilearn.datasets.fetch_coords_seitzman_2018``
  (14 networks; 67 default-mode nodes, one 6.7 mm from the PCC seed
  (0, -52, 18)). Each network has one band-limited (0.01-0.1 Hz) time course
  per subject; a node's time course mixes it with a node-specific one; each
  node is a Gaussian blob on the brain. ``unassigned`` nodes are independent.
* **Artefacts that only confound regression removes**: head motion (six
  rigid-body parameters; the artefact is the baseline image's intensity
  gradient times the displacement, exactly linear in ``trans_*``/``rot_*``), a
  framewise-displacement-locked global drop, a global signal and two
  physiological sources (their span is ``a_comp_cor_00..05``; ``csf`` and
  ``white_matter`` carry them too).
* **Artefacts that only filtering removes**: slow drifts (linear, quadratic and
  a very slow cosine, per voxel plus a shared scanner drift) and a shared
  high-frequency (0.13-0.24 Hz) oscillation. Plus white noise per voxel.
* **Subjects differ** in noise level, network strength, motion (children move
  more), and global amplitude (``synthetic_truth.json``: ``subjects``).

The full fMRIPrep-style confounds TSV has ``n/a`` in the first row of
``framewise_displacement`` (fMRIPrep's convention). The reduced TSV is written
as nilearn's ``fetch_development_fmri`` writes it (same 15 columns, numpy text)
with that first value set to 0, as in the real downsampled dataset, because
nilearn's cleaning refuses NaN confounds.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..atomic import atomic_dir, ensure_writable_dir
from ..config import check_size
from ..errors import DataError
from ..progress import null_progress, scaled

DATASET = "development_fmri"
N_VOLUMES = 168
T_R = 2.0
#: Signal band of the planted networks (Hz).
BAND = (0.01, 0.1)
PCC_MM = (0.0, -52.0, 18.0)
DMN = "DefaultMode"
SIZES = {
    "full": {"resolution": 4, "n_subjects": 4, "node_sigma": 4.0},
    "small": {"resolution": 6, "n_subjects": 3, "node_sigma": 5.0},
}
#: Real adult and child ids of the study (the fetcher's OSF key table has them).
ADULT_IDS = [f"sub-pixar{i:03d}" for i in range(123, 156)]
CHILD_IDS = [f"sub-pixar{i:03d}" for i in range(1, 123)]
FUNC = "{0}_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
CONFOUNDS = "{0}_task-pixar_desc-confounds_regressors.tsv"
REDUCED = "{0}_task-pixar_desc-reducedConfounds_regressors.tsv"
TRUTH = "synthetic_truth.json"
TRUTH_NPZ = "synthetic_truth.npz"
MASK = "synthetic_brain_mask.nii.gz"
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
COMPCOR = [f"a_comp_cor_{i:02d}" for i in range(6)]
#: The columns nilearn keeps in the reduced confounds (its order).
REDUCED_COLUMNS = MOTION + ["framewise_displacement"] + COMPCOR + ["csf", "white_matter"]
FULL_COLUMNS = ["global_signal", "csf", "white_matter", "framewise_displacement"] + COMPCOR + MOTION

#: Amplitudes in signal units (one unit = 1 % of a baseline of 1000).
UNIT = 10.0
BASELINE = 1000.0


def dataset_dir(data_dir) -> Path:
    return Path(data_dir) / DATASET


def is_present(data_dir) -> bool:
    """Every file ``fetch_development_fmri`` needs (for every subject) is in place."""
    root = dataset_dir(data_dir)
    truth = root / TRUTH
    if not (truth.is_file() and (root / "participants.tsv").is_file()):
        return False
    try:
        ids = [s["participant_id"] for s in json.loads(truth.read_text())["subjects"]]
    except (ValueError, KeyError):
        return False
    return all((root / pattern.format(pid)).is_file()
               for pid in ids for pattern in (FUNC, CONFOUNDS, REDUCED))


# --------------------------------------------------------------------------- pieces

def participant_ids(n_subjects: int) -> tuple[list[str], list[str]]:
    """(adult ids, child ids) for ``n_subjects``: about the study's 33/155 adults."""
    if not 1 <= n_subjects <= len(ADULT_IDS) + len(CHILD_IDS):
        raise DataError(f"n_subjects must be between 1 and 155, not {n_subjects}")
    n_adult = max(1, int(round(n_subjects * len(ADULT_IDS) / 155)))
    if n_subjects >= 2:
        n_adult = min(n_adult, n_subjects - 1)
    n_adult = min(n_adult, len(ADULT_IDS))
    n_child = n_subjects - n_adult
    if n_child > len(CHILD_IDS):
        n_child = len(CHILD_IDS)
        n_adult = n_subjects - n_child
    return ADULT_IDS[:n_adult], CHILD_IDS[:n_child]


def band_limited(rng, n_time: int, n_series: int, low: float, high: float,
                 t_r: float = T_R) -> np.ndarray:
    """Unit-variance noise with its spectrum cut to ``[low, high]`` Hz: ``(n_time, n_series)``."""
    white = rng.standard_normal((n_time, n_series))
    spec = np.fft.rfft(white, axis=0)
    freqs = np.fft.rfftfreq(n_time, d=t_r)
    spec[(freqs < low) | (freqs > high)] = 0
    out = np.fft.irfft(spec, n=n_time, axis=0)
    out -= out.mean(axis=0)
    out /= out.std(axis=0)
    return out


def seitzman_nodes():
    """The 300 Seitzman 2018 ROIs: coordinates ``(300, 3)`` in MNI mm and network labels."""
    from nilearn.datasets import fetch_coords_seitzman_2018

    atlas = fetch_coords_seitzman_2018()
    coords = atlas.rois[["x", "y", "z"]].to_numpy(dtype=float)
    return coords, [str(n) for n in atlas.networks]


def _geometry(resolution: int):
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

    template = load_mni152_template(resolution=resolution)
    mask_img = load_mni152_brain_mask(resolution=resolution)
    mask = np.asarray(mask_img.dataobj) > 0
    anat = np.asarray(template.dataobj, dtype=float)
    return mask, anat, np.asarray(mask_img.affine, dtype=float)


def _node_weights(coords_mm, node_xyz, sigma, rng):
    """Sparse ``(n_nodes, n_voxels)`` Gaussian blobs (truncated at 2.5 sigma)."""
    from scipy import sparse
    from scipy.spatial import cKDTree

    tree = cKDTree(coords_mm)
    rows, cols, vals = [], [], []
    amp = rng.uniform(0.8, 1.2, len(node_xyz))
    for n, (centre, hits) in enumerate(zip(node_xyz, tree.query_ball_point(node_xyz, 2.5 * sigma))):
        if not hits:
            continue
        d2 = ((coords_mm[hits] - centre) ** 2).sum(axis=1)
        rows += [n] * len(hits)
        cols += hits
        vals.append(amp[n] * np.exp(-d2 / (2 * sigma ** 2)))
    vals = np.concatenate(vals) if vals else np.zeros(0)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(node_xyz), len(coords_mm)))


def _motion(rng, n_time, scale):
    """Six rigid-body parameters ``(n_time, 6)`` (mm, radians): drift, jumps, noise."""
    walk = np.cumsum(rng.normal(0, 0.02, (n_time, 6)), axis=0)
    jumps = np.zeros((n_time, 6))
    for t in rng.choice(np.arange(10, n_time - 5), size=3, replace=False):
        jumps[t:] += rng.normal(0, 0.25, 6)
    slow = band_limited(rng, n_time, 6, 0.005, 0.08) * 0.08
    params = (walk + jumps + slow + rng.normal(0, 0.01, (n_time, 6))) * scale
    params -= params[0]
    params[:, 3:] *= np.pi / 180  # rotations: degrees -> radians
    return params


def framewise_displacement(motion: np.ndarray, radius: float = 50.0) -> np.ndarray:
    """Power's FD: sum of |differences| (rotations as arcs on a 50 mm sphere); NaN first."""
    diff = np.abs(np.diff(motion, axis=0))
    fd = diff[:, :3].sum(axis=1) + radius * diff[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def _round_trip(df: pd.DataFrame) -> pd.DataFrame:
    """Values as they will read back from the TSV (10 significant digits)."""
    return df.map(lambda v: float(f"{v:.10g}") if np.isfinite(v) else v)


def _header(shape, affine, zooms, t_r=None):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float32)
    hdr.set_data_shape(shape)
    hdr.set_zooms(tuple(float(z) for z in zooms) + ((float(t_r),) if t_r else ()))
    hdr.set_qform(affine, code=4)
    hdr.set_sform(affine, code=4)
    hdr.set_xyzt_units("mm", "sec")
    return hdr


def subject_rng(seed: int, participant_id: str) -> np.random.Generator:
    """A subject's random stream: the same participant gets the same data for any N."""
    return np.random.default_rng([int(seed), int(participant_id.rsplit("pixar", 1)[-1])])


def shared_geometry(size: str, seed: int = 0) -> dict:
    """What all subjects share: grid, mask, baseline, networks, artefact maps."""
    spec = SIZES[check_size(size)]
    mask, anat, affine = _geometry(spec["resolution"])
    ijk = np.argwhere(mask)                         # C order of the mask voxels
    coords = ijk * np.diag(affine)[:3] + affine[:3, 3]
    n_vox = len(ijk)
    rng = np.random.default_rng([int(seed), 0])
    node_xyz, node_net = seitzman_nodes()
    networks = sorted(set(node_net) - {"unassigned"})
    weights = _node_weights(coords, node_xyz, spec["node_sigma"], rng)
    within = rng.uniform(0.55, 0.8, len(networks))   # node coherence within a network

    from scipy.ndimage import gaussian_filter

    template = anat / max(anat[mask].max(), 1e-9)
    base_vol = np.where(mask, BASELINE * (0.75 + 0.5 * template), 0.0)
    # motion artefact maps: -(grad B) . displacement, displacement = t + w x p
    zooms = np.diag(affine)[:3]
    grad = np.stack([g[mask] for g in np.gradient(gaussian_filter(base_vol, 1.0), *zooms)], axis=1)
    rel = coords - coords.mean(axis=0)
    motion_maps = np.concatenate([-grad, -np.cross(rel, grad)], axis=1).T * 0.5  # (6, n_vox)
    dist = np.linalg.norm(rel, axis=1)
    t = np.arange(N_VOLUMES) * T_R
    tt = (t - t.mean()) / np.ptp(t)
    return {
        "mask": mask, "affine": affine, "coords": coords, "n_vox": n_vox,
        "node_xyz": node_xyz, "node_net": node_net, "networks": networks,
        "weights": weights, "within": within, "base": base_vol[mask],
        "motion_maps": motion_maps,
        "global_map": 0.8 + 0.4 * template[mask],
        "physio_maps": np.stack([np.exp(-dist ** 2 / (2 * 25.0 ** 2)),
                                 0.5 + (coords[:, 2] - coords[:, 2].min()) / np.ptp(coords[:, 2])]),
        "hf_map": 0.7 + 0.6 * rng.uniform(size=n_vox),
        "drift_maps": rng.normal(0, 1.0, (3, n_vox)) * np.array([[3.0], [2.0], [2.0]]),
        "drift_basis": np.stack([tt, tt ** 2 - (tt ** 2).mean(), np.cos(np.pi * t / t[-1])], axis=1),
    }


def subject_params(srng, participant_id: str, index: int, child: bool) -> dict:
    """A subject's own parameters: noise, network strength, motion (children move more)."""
    return {
        "participant_id": participant_id, "index": index,
        "child_adult": "child" if child else "adult",
        "age": round(float(srng.uniform(3.5, 12) if child else srng.uniform(18, 39)), 2),
        "noise_sd": round(float(srng.uniform(0.9, 1.5)), 4),
        "network_strength": round(float(srng.uniform(0.75, 1.25)), 4),
        "motion_scale": round(float(srng.uniform(1.0, 2.0) if child else srng.uniform(0.4, 1.0)), 4),
        "global_amplitude": round(float(srng.uniform(0.9, 1.5)), 4),
    }


def synthesize_subject(geom: dict, srng, params: dict):
    """One subject's signal components ``{name: (n_volumes, n_voxels)}``, confounds, network tcs.

    The data is ``geom["base"] + sum(components)``. Confound-removable
    components lie exactly in the span of the written confounds.
    """
    from scipy.signal.windows import tukey

    networks, node_net, node_xyz = geom["networks"], geom["node_net"], geom["node_xyz"]
    within = geom["within"]
    # networks: one band-limited time course each; nodes mix it with their own
    net_tc = band_limited(srng, N_VOLUMES, len(networks), *BAND)
    own_tc = band_limited(srng, N_VOLUMES, len(node_xyz), *BAND)
    node_tc = own_tc.copy()
    for k, name in enumerate(networks):
        idx = [n for n, lab in enumerate(node_net) if lab == name]
        node_tc[:, idx] = (np.sqrt(within[k]) * net_tc[:, [k]]
                           + np.sqrt(1 - within[k]) * own_tc[:, idx])
    comps = {"networks": UNIT * 1.5 * params["network_strength"]
             * (geom["weights"].T @ node_tc.T).T}

    # nuisance sources
    g = band_limited(srng, N_VOLUMES, 1, 0.005, 0.15)[:, 0] * params["global_amplitude"]
    physio = band_limited(srng, N_VOLUMES, 2, 0.01, 0.2)
    hf = band_limited(srng, N_VOLUMES, 1, 0.13, 0.24)[:, 0] * tukey(N_VOLUMES, 0.2)
    hf /= hf.std()  # tapered: no filter transients at the run's ends
    motion = _motion(srng, N_VOLUMES, params["motion_scale"])
    extra = band_limited(srng, N_VOLUMES, 3, 0.005, 0.2)

    # the confounds as they will be read back (exactly)
    fd = framewise_displacement(motion)
    compcor_src = np.column_stack([g, physio, extra])
    u, _, _ = np.linalg.svd(compcor_src - compcor_src.mean(axis=0), full_matrices=False)
    conf = pd.DataFrame(motion, columns=MOTION)
    conf["framewise_displacement"] = fd
    for i, name in enumerate(COMPCOR):
        conf[name] = u[:, i]
    conf["csf"] = 800 + UNIT * (g + 1.2 * physio[:, 0] + 0.2 * srng.standard_normal(N_VOLUMES))
    conf["white_matter"] = 900 + UNIT * (0.8 * g + physio[:, 1]
                                         + 0.2 * srng.standard_normal(N_VOLUMES))
    conf = _round_trip(conf)
    motion_rt = conf[MOTION].to_numpy()
    fd_rt = np.nan_to_num(conf["framewise_displacement"].to_numpy())
    u_rt = conf[COMPCOR].to_numpy()
    g_rt = _in_span(u_rt, g)
    physio_rt = np.column_stack([_in_span(u_rt, physio[:, 0]), _in_span(u_rt, physio[:, 1])])

    gmap = geom["global_map"]
    comps["global"] = UNIT * np.outer(g_rt, gmap)
    comps["physio"] = UNIT * 0.8 * physio_rt @ geom["physio_maps"]
    comps["motion"] = (motion_rt - motion_rt.mean(axis=0)) @ geom["motion_maps"]
    comps["fd"] = -UNIT * 1.5 * np.outer(fd_rt - fd_rt.mean(), gmap)
    comps["high_frequency"] = UNIT * np.outer(hf, geom["hf_map"])
    drift_basis = geom["drift_basis"]
    comps["drift"] = UNIT * (drift_basis @ geom["drift_maps"] + 2.0 * drift_basis[:, [0]])
    comps["noise"] = UNIT * params["noise_sd"] * srng.standard_normal((N_VOLUMES, geom["n_vox"]))
    return comps, conf, net_tc


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
            "generator": "fmri-explorer development-like synthetic data", "version": 1,
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


def _in_span(basis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The projection of ``x`` on the columns of ``basis`` plus ``x``'s mean."""
    coef, *_ = np.linalg.lstsq(basis, x - x.mean(), rcond=None)
    return basis @ coef


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


def load(data_dir=None, n_subjects: int | None = None, size: str | None = None,
         age_group: str = "both", reduce_confounds: bool = True):
    """Subjects (synthetic or real) read through ``nilearn.datasets.fetch_development_fmri``.

    Returns the fetcher's Bunch (``func``, ``confounds``, ``phenotypic``,
    ``t_r``), subjects ordered adults first, then by id (so index ``i`` is the
    same subject for every ``n_subjects``), plus ``truth`` (the planted truth
    dict, None for real data) and ``data_dir``. ``data_dir`` defaults to the
    synthetic cache of ``size`` (generated on first use); ``n_subjects``
    defaults to every subject present.
    """
    from nilearn.datasets import fetch_development_fmri

    if data_dir is None:
        from . import ensure_synthetic

        data_dir = ensure_synthetic("connectivity", size=size)
    data_dir = Path(data_dir)
    root = dataset_dir(data_dir)
    if not (root / "participants.tsv").is_file():
        raise DataError("no development_fmri dataset here (expected development_fmri/"
                        "participants.tsv and the subjects' files; make one with "
                        "'fmri-explorer data connectivity --out DIR')", data_dir)
    truth = read_truth(data_dir)
    if n_subjects is None:
        n_subjects = len(pd.read_table(root / "participants.tsv"))
    bunch = fetch_development_fmri(n_subjects=n_subjects, data_dir=str(data_dir), verbose=0,
                                   age_group=age_group, reduce_confounds=reduce_confounds)
    pheno = bunch.phenotypic.reset_index(drop=True)
    order = pheno.sort_values(["Child_Adult", "participant_id"], kind="stable").index.to_numpy()
    bunch.func = [bunch.func[i] for i in order]
    bunch.confounds = [bunch.confounds[i] for i in order]
    bunch.phenotypic = pheno.loc[order].reset_index(drop=True)
    bunch.truth = truth
    bunch.data_dir = str(data_dir)
    return bunch


def subject_files(data_dir=None, subject: int = 0, size: str | None = None) -> dict:
    """One subject's ``func``, ``confounds`` (reduced) and ``confounds_full`` paths, id, t_r."""
    bunch = load(data_dir, size=size)
    n = len(bunch.func)
    if not 0 <= subject < n:
        raise DataError(f"subject {subject} does not exist: this dataset has {n} "
                        f"subject(s), numbered 0 to {n - 1}")
    pid = str(bunch.phenotypic["participant_id"][subject])
    full = Path(bunch.confounds[subject]).with_name(CONFOUNDS.format(pid))
    return {"func": bunch.func[subject], "confounds": bunch.confounds[subject],
            "confounds_full": str(full) if full.is_file() else None,
            "participant_id": pid, "t_r": float(bunch.t_r), "n_subjects": n,
            "truth": bunch.truth, "data_dir": bunch.data_dir}
