"""The planted signal of the synthetic development-like dataset, without any file.

The study's constants (volumes, TR, sizes, participant ids, confound columns)
and the model every subject is drawn from: networks at the Seitzman 2018 ROIs
(:func:`shared_geometry`), each subject's parameters (:func:`subject_params`)
and signal components with the confounds that explain them
(:func:`synthesize_subject`); :mod:`.development_synthetic` writes them in the
fetcher's layout, and :mod:`analysis.datasets.development` (which re-exports
every name here) describes the planted structure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import check_size
from ..errors import DataError

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
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
COMPCOR = [f"a_comp_cor_{i:02d}" for i in range(6)]
#: The columns nilearn keeps in the reduced confounds (its order).
REDUCED_COLUMNS = MOTION + ["framewise_displacement"] + COMPCOR + ["csf", "white_matter"]
FULL_COLUMNS = ["global_signal", "csf", "white_matter", "framewise_displacement"] + COMPCOR + MOTION

#: Amplitudes in signal units (one unit = 1 % of a baseline of 1000).
UNIT = 10.0
BASELINE = 1000.0
#: Sizes (in units) of the global signal and the FD-locked drop, and the maps' (floor,
#: slope) over "grey matter" (global) or away from it (physiological, high frequency).
GLOBAL_SIZE = 0.5
FD_SIZE = 1.0
GLOBAL_MAP = (0.3, 0.9)
PHYSIO_MAP = (0.1, 2.2)
HF_MAP = (0.1, 1.3)
#: Between subjects: spread (log sd) of the overall and per-network strength, of the
#: node coherence, and each node's anatomical jitter (sd per axis, mm: about a 4 mm voxel).
STRENGTH_SPREAD = 0.5
NETWORK_SPREAD = 0.3
COHERENCE_SPREAD = 0.12
JITTER_MM = 2.0


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
    from nilearn.datasets import (load_mni152_brain_mask, load_mni152_gm_template,
                                  load_mni152_template)

    template = load_mni152_template(resolution=resolution)
    mask_img = load_mni152_brain_mask(resolution=resolution)
    mask = np.asarray(mask_img.dataobj) > 0
    anat = np.asarray(template.dataobj, dtype=float)
    grey = np.clip(np.asarray(load_mni152_gm_template(resolution=resolution).dataobj,
                              dtype=float), 0, 1)
    return mask, anat, grey, np.asarray(mask_img.affine, dtype=float)


def _node_weights(coords_mm, node_xyz, sigma, amp, tree=None):
    """Sparse ``(n_nodes, n_voxels)`` Gaussian blobs of peak ``amp`` (truncated at 2.5 sigma)."""
    from scipy import sparse
    from scipy.spatial import cKDTree

    tree = cKDTree(coords_mm) if tree is None else tree
    rows, cols, vals = [], [], []
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


def subject_rng(seed: int, participant_id: str) -> np.random.Generator:
    """A subject's random stream: the same participant gets the same data for any N."""
    return np.random.default_rng([int(seed), int(participant_id.rsplit("pixar", 1)[-1])])


def shared_geometry(size: str, seed: int = 0) -> dict:
    """What all subjects share: grid, mask, baseline, networks, artefact maps."""
    spec = SIZES[check_size(size)]
    mask, anat, grey_vol, affine = _geometry(spec["resolution"])
    ijk = np.argwhere(mask)                         # C order of the mask voxels
    coords = ijk * np.diag(affine)[:3] + affine[:3, 3]
    n_vox = len(ijk)
    rng = np.random.default_rng([int(seed), 0])
    node_xyz, node_net = seitzman_nodes()
    networks = sorted(set(node_net) - {"unassigned"})
    amp = rng.uniform(0.8, 1.2, len(node_xyz))
    weights = _node_weights(coords, node_xyz, spec["node_sigma"], amp)
    within = rng.uniform(0.55, 0.8, len(networks))   # node coherence within a network

    from scipy.ndimage import gaussian_filter
    from scipy.spatial import cKDTree

    template = anat / max(anat[mask].max(), 1e-9)
    base_vol = np.where(mask, BASELINE * (0.75 + 0.5 * template), 0.0)
    # motion artefact maps: -(grad B) . displacement, displacement = t + w x p
    zooms = np.diag(affine)[:3]
    grad = np.stack([g[mask] for g in np.gradient(gaussian_filter(base_vol, 1.0), *zooms)], axis=1)
    rel = coords - coords.mean(axis=0)
    motion_maps = np.concatenate([-grad, -np.cross(rel, grad)], axis=1).T * 0.5  # (6, n_vox)
    dist = np.linalg.norm(rel, axis=1)
    # the global signal lives mostly in grey matter (MNI152 probability), the
    # physiological noise (pulsation, respiration) mostly in white matter and CSF
    grey = grey_vol[mask]
    deep = 1.0 - grey
    t = np.arange(N_VOLUMES) * T_R
    tt = (t - t.mean()) / np.ptp(t)
    return {
        "mask": mask, "affine": affine, "coords": coords, "n_vox": n_vox,
        "resolution": spec["resolution"], "node_sigma": spec["node_sigma"], "node_amp": amp,
        "node_xyz": node_xyz, "node_net": node_net, "networks": networks,
        "weights": weights, "within": within, "tree": cKDTree(coords), "base": base_vol[mask],
        "motion_maps": motion_maps,
        "global_map": GLOBAL_MAP[0] + GLOBAL_MAP[1] * grey,
        "physio_maps": np.stack([np.exp(-dist ** 2 / (2 * 25.0 ** 2)),
                                 0.5 + (coords[:, 2] - coords[:, 2].min()) / np.ptp(coords[:, 2])])
        * (PHYSIO_MAP[0] + PHYSIO_MAP[1] * deep),
        "hf_map": (HF_MAP[0] + HF_MAP[1] * deep) * (0.7 + 0.6 * rng.uniform(size=n_vox)),
        "drift_maps": rng.normal(0, 1.0, (3, n_vox)) * np.array([[3.0], [2.0], [2.0]]),
        "drift_basis": np.stack([tt, tt ** 2 - (tt ** 2).mean(), np.cos(np.pi * t / t[-1])], axis=1),
    }


def subject_params(srng, participant_id: str, index: int, child: bool) -> dict:
    """A subject's own parameters: noise, network strength, motion (children move more)."""
    strength = float(np.clip(np.exp(srng.normal(0, STRENGTH_SPREAD)), 0.4, 2.0))
    return {
        "participant_id": participant_id, "index": index,
        "child_adult": "child" if child else "adult",
        "age": round(float(srng.uniform(3.5, 12) if child else srng.uniform(18, 39)), 2),
        "noise_sd": round(float(srng.uniform(0.8, 1.6)), 4),
        "network_strength": round(strength, 4),
        "motion_scale": round(float(srng.uniform(1.0, 2.0) if child else srng.uniform(0.4, 1.0)), 4),
        "global_amplitude": round(float(srng.uniform(0.5, 1.5)), 4),
    }


def subject_networks(geom: dict, srng, params: dict):
    """A subject's own networks: nodes jittered, strengths and coherences of its own.

    Returns the ``(n_nodes, n_voxels)`` weights, each network's gain and coherence;
    ``params`` gains ``jitter_rms_mm`` and ``network_gains``.
    """
    node_xyz, n_net = np.asarray(geom["node_xyz"]), len(geom["networks"])
    shift = srng.normal(0, JITTER_MM, node_xyz.shape)
    weights = _node_weights(geom["coords"], node_xyz + shift, geom["node_sigma"],
                            geom["node_amp"], geom.get("tree"))
    gains = params["network_strength"] * np.exp(srng.normal(0, NETWORK_SPREAD, n_net))
    within = np.clip(geom["within"] + srng.normal(0, COHERENCE_SPREAD, n_net), 0.3, 0.9)
    params["jitter_rms_mm"] = round(float(np.sqrt((shift ** 2).sum(axis=1).mean())), 3)
    params["network_gains"] = {n: round(float(g), 4) for n, g in zip(geom["networks"], gains)}
    return weights, gains, within


def synthesize_subject(geom: dict, srng, params: dict):
    """One subject's signal components ``{name: (n_volumes, n_voxels)}``, confounds, network tcs.

    The data is ``geom["base"] + sum(components)``. Confound-removable
    components lie exactly in the span of the written confounds.
    """
    from scipy.signal.windows import tukey

    networks, node_net, node_xyz = geom["networks"], geom["node_net"], geom["node_xyz"]
    weights, gains, within = subject_networks(geom, srng, params)
    # networks: one band-limited time course each; nodes mix it with their own
    net_tc = band_limited(srng, N_VOLUMES, len(networks), *BAND)
    own_tc = band_limited(srng, N_VOLUMES, len(node_xyz), *BAND)
    node_tc = own_tc * params["network_strength"]
    for k, name in enumerate(networks):
        idx = [n for n, lab in enumerate(node_net) if lab == name]
        node_tc[:, idx] = gains[k] * (np.sqrt(within[k]) * net_tc[:, [k]]
                                      + np.sqrt(1 - within[k]) * own_tc[:, idx])
    comps = {"networks": UNIT * 1.5 * (weights.T @ node_tc.T).T}

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
    comps["global"] = UNIT * GLOBAL_SIZE * np.outer(g_rt, gmap)
    comps["physio"] = UNIT * 0.8 * physio_rt @ geom["physio_maps"]
    comps["motion"] = (motion_rt - motion_rt.mean(axis=0)) @ geom["motion_maps"]
    comps["fd"] = -UNIT * FD_SIZE * np.outer(fd_rt - fd_rt.mean(), gmap)
    comps["high_frequency"] = UNIT * np.outer(hf, geom["hf_map"])
    drift_basis = geom["drift_basis"]
    comps["drift"] = UNIT * (drift_basis @ geom["drift_maps"] + 2.0 * drift_basis[:, [0]])
    comps["noise"] = UNIT * params["noise_sd"] * srng.standard_normal((N_VOLUMES, geom["n_vox"]))
    return comps, conf, net_tc


def _in_span(basis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The projection of ``x`` on the columns of ``basis`` plus ``x``'s mean."""
    coef, *_ = np.linalg.lstsq(basis, x - x.mean(), rcond=None)
    return basis @ coef
