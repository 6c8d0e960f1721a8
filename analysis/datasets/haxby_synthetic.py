"""The synthetic Haxby-like dataset: its constants and planted truth, and :func:`generate`.

The generator writes subject 2 in ``nilearn.datasets.fetch_haxby``'s layout
(4D bold streamed run by run, masks, labels, ``MD5SUMS``), the planted truth
beside it (``ground_truth.json``, ``ground_truth.npz``) and the VT masked-data
cache; the layout and the planted structure are described in
:mod:`analysis.datasets.haxby`, which re-exports every name here.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..atomic import atomic_dir, ensure_writable_dir
from ..config import check_size
from ..progress import null_progress
from .haxby_masked import _masked_from_raw, _write_cache

DATASET = "haxby2001"
SUBJECT = 2
SUB_FILES = ("bold.nii.gz", "labels.txt", "mask4_vt.nii.gz", "mask8b_face_vt.nii.gz",
             "mask8b_house_vt.nii.gz", "mask8_face_vt.nii.gz", "mask8_house_vt.nii.gz",
             "anat.nii.gz")
CATEGORIES = ("face", "house", "cat", "shoe", "scissors", "bottle", "chair", "scrambledpix")
#: The two conditions with no planted difference (identical patterns).
NULL_PAIR = ("bottle", "chair")
T_R = 2.5
N_RUNS = 12
BLOCK = 9
#: rest volumes: before the first block, between blocks, after the last (real layout).
REST_START, REST_GAPS, REST_END = 6, (6, 5, 5, 5, 6, 5, 5), 6
N_PER_RUN = REST_START + BLOCK * len(CATEGORIES) + sum(REST_GAPS) + REST_END  # 121

#: Per size: grid shape, voxel size (mm), brain ellipsoid radii (voxels), VT voxels,
#: amplitudes (percent of baseline) of the category patterns and of the noise terms.
#: ``signal`` scales the category patterns, ``artefact`` is the rms (%) of the
#: run-specific, task-correlated artefact (see :data:`ARTEFACT_SIGN`).
SIZES = {
    "full": dict(shape=(40, 64, 64), zooms=(3.5, 3.75, 3.75), radii=(17.0, 27.0, 23.0),
                 n_vt=464, signal=0.8, artefact=1.0),
    "small": dict(shape=(20, 24, 20), zooms=(7.0, 7.5, 7.5), radii=(8.5, 10.5, 8.5),
                  n_vt=150, signal=1.4, artefact=1.4),
}
BASELINE = 1000.0
NOISE = 4.0          # white/AR(1) noise sd, % of baseline
AR_RHO = 0.3
RUN_OFFSET = 0.2     # run-specific offset pattern sd, %
RUN_DRIFT = 0.5      # linear drift amplitude within a run, %
RUN_CATEGORY = 0.3   # run-specific deviation of each category pattern, relative
SHARED = 0.8         # shared visual response (every category vs rest), %
CATEGORY = 0.55      # category-specific pattern rms in VT, %
#: Gain of each category's own component (1 when absent): houses drive a strong,
#: distinct place pattern (face vs house near ceiling, as in the real data), cats a
#: weaker one of their own (with :data:`ANIMATE`, they look like faces).
CATEGORY_GAIN = {"house": 3.0, "cat": 0.7}
#: rms (relative to :data:`CATEGORY`) of the component faces and cats share (animate
#: objects): face vs cat is the harder pair, as in the real data.
ANIMATE = 0.8
ANIMATE_SET = ("face", "cat")
#: Sign of the task-correlated artefact in each category's blocks: within a run
#: the two groups move in opposite directions along that run's artefact pattern;
#: the null pair carries none (it stays without any planted difference).
ARTEFACT_SIGN = {"face": 1, "shoe": 1, "scissors": 1, "scrambledpix": 1,
                 "house": -1, "cat": -1, "bottle": 0, "chair": 0}


def dataset_dir(data_dir) -> Path:
    return Path(data_dir) / DATASET


def subject_dir(data_dir, subject: int = SUBJECT) -> Path:
    return dataset_dir(data_dir) / f"subj{subject}"


#: Bumped when what the generator plants changes: older synthetic data is made again.
GENERATOR_VERSION = 4


def is_present(data_dir) -> bool:
    """Every file ``fetch_haxby(data_dir=data_dir)`` needs for subject 2 is in place,
    made by this version of the generator."""
    root = dataset_dir(data_dir)
    sub = subject_dir(data_dir)
    if not ((root / "mask.nii.gz").is_file() and (root / "MD5SUMS").is_file() and all(
            (sub / name).is_file() for name in SUB_FILES)):
        return False
    try:
        truth = json.loads((sub / "ground_truth.json").read_text())
    except (OSError, ValueError):
        return False
    return truth.get("generator_version") == GENERATOR_VERSION


# --------------------------------------------------------------------------- layout

def run_layout(rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """Labels and chunks of all runs: ``(labels, chunks)``, each of length 1,452."""
    labels, chunks = [], []
    for run in range(N_RUNS):
        order = rng.permutation(len(CATEGORIES))
        seq = ["rest"] * REST_START
        for b, c in enumerate(order):
            seq += [CATEGORIES[c]] * BLOCK
            seq += ["rest"] * (REST_GAPS[b] if b < len(REST_GAPS) else REST_END)
        assert len(seq) == N_PER_RUN
        labels += seq
        chunks += [run] * N_PER_RUN
    return labels, chunks


def glover_hrf(t_r: float = T_R, length: float = 32.0) -> np.ndarray:
    """The Glover (SPM-like) HRF sampled at ``t_r`` (peak normalised to 1)."""
    from scipy.stats import gamma

    t = np.arange(0, length, t_r)
    h = gamma.pdf(t, 6.0) - gamma.pdf(t, 16.0) / 6.0
    return h / h.max()


def _affine(shape, zooms) -> np.ndarray:
    # like the real Haxby affine: x flipped (radiological), centred grid
    affine = np.diag([-zooms[0], zooms[1], zooms[2], 1.0])
    centre = (np.asarray(shape) - 1) / 2.0
    affine[:3, 3] = -affine[:3, :3] @ centre
    return affine


def _orthonormal(columns: np.ndarray, centre: bool = True) -> np.ndarray:
    """Orthogonalised columns (Gram-Schmidt order, signs kept), each of rms 1."""
    x = np.asarray(columns, dtype=np.float64)
    if centre:
        x = x - x.mean(axis=0)
    q, r = np.linalg.qr(x)
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)
    return q * np.sqrt(len(q))


def _smooth_field(rng, shape, sigma) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal(shape), sigma)
    return f / f.std()


def _geometry(size: str, rng):
    spec = SIZES[size]
    shape = spec["shape"]
    grid = np.indices(shape).astype(float)
    centre = (np.asarray(shape, float) - 1) / 2.0
    radii = np.asarray(spec["radii"])
    d = np.sqrt(sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3)))
    brain = d <= 1.0
    # anatomy: bright cortex ribbon, darker white matter, dark ventricles, smooth texture
    anat = np.where(brain, 600.0, 0.0)
    anat += np.where((d > 0.78) & brain, 300.0, 0.0)
    anat -= np.where(d < 0.22, 350.0, 0.0)
    anat += np.where(brain, 60.0 * _smooth_field(rng, shape, 2.0), 0.0)
    anat = np.clip(anat, 0, None)
    # ventral-temporal mask: two bilateral ellipsoids, posterior and inferior;
    # exactly n_vt voxels (the n_vt/2 nearest to each centre)
    n_half = spec["n_vt"] // 2
    vt = np.zeros(shape, bool)
    for side in (-1, 1):
        c = centre + np.array([side * 0.45 * radii[0], -0.25 * radii[1], -0.45 * radii[2]])
        r = radii * np.array([0.18, 0.32, 0.14])
        dist = np.sqrt(sum(((grid[i] - c[i]) / r[i]) ** 2 for i in range(3)))
        dist[~brain] = np.inf
        dist[vt] = np.inf
        idx = np.argsort(dist, axis=None)[:n_half]
        vt.flat[idx] = True
    return shape, brain, anat, vt


def _nifti_header(shape, affine, zooms, dtype, t_r=None):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape)
    hdr.set_zooms(tuple(zooms) + ((t_r,) if t_r is not None else ()))
    hdr.set_qform(affine, code=1)
    hdr.set_sform(affine, code=1)
    hdr.set_xyzt_units("mm", "sec")
    hdr["scl_slope"] = 1.0
    hdr["scl_inter"] = 0.0
    return hdr


def _save(data, affine, path, zooms, dtype):
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), affine,
                          _nifti_header(data.shape, affine, zooms, dtype))
    img.to_filename(str(path))


def generate(data_dir, size: str = "full", seed: int = 0, progress=None) -> dict:
    """Write the synthetic Haxby-like dataset in ``fetch_haxby``'s layout.

    Deterministic: the same ``seed`` and ``size`` give the same files. Written
    into a temporary folder renamed into place (nothing half-written is left).
    Returns a JSON-able description (paths, shapes, TR, ground truth summary).
    """
    from . import claim_folder

    size = check_size(size)
    progress = progress or null_progress
    data_dir = ensure_writable_dir(data_dir)
    params = {"dataset": DATASET, "size": size, "seed": int(seed),
              "generator_version": GENERATOR_VERSION}
    if claim_folder(dataset_dir(data_dir), params, lambda: is_present(data_dir), _legacy):
        progress(1.0, "already there")
        return describe(data_dir)
    spec = SIZES[size]
    rng = np.random.default_rng(seed)
    progress(0.0, "geometry")
    shape, brain, anat, vt = _geometry(size, rng)
    affine = _affine(shape, spec["zooms"])
    labels, chunks = run_layout(rng)
    labels_arr = np.asarray(labels)
    chunks_arr = np.asarray(chunks)
    n_vol = len(labels)

    # ---- planted patterns (VT voxels), percent of baseline
    n_vt = int(vt.sum())
    sigma = 1.2 if size == "full" else 0.7
    fields = _orthonormal(np.column_stack(
        [_smooth_field(rng, shape, sigma)[vt] for c in CATEGORIES + ("animate",)]))
    animate = fields[:, -1]
    fields = {c: fields[:, i] for i, c in enumerate(CATEGORIES)}
    fields[NULL_PAIR[1]] = fields[NULL_PAIR[0]]  # identical: no planted difference
    shared = np.abs(_smooth_field(rng, shape, sigma)[vt]) * SHARED
    patterns = {c: spec["signal"] * (shared + CATEGORY * (
        CATEGORY_GAIN.get(c, 1.0) * fields[c] + ANIMATE * (c in ANIMATE_SET) * animate))
        for c in CATEGORIES}
    # one artefact pattern a run, orthogonal to the planted patterns and to each other
    planted = np.column_stack([shared, animate] + [fields[c] for c in CATEGORIES])
    artefacts = rng.standard_normal((n_vt, N_RUNS))
    q_planted = np.linalg.qr(planted)[0]
    artefacts -= q_planted @ (q_planted.T @ artefacts)
    artefacts = spec["artefact"] * _orthonormal(artefacts, centre=False)
    hrf = glover_hrf()

    # ---- write bold directly as a gzip stream, run by run (no 4D array in memory)
    root_final = dataset_dir(data_dir)
    brain_idx = np.flatnonzero(brain.reshape(-1, order="F"))   # NIfTI (Fortran) order
    vt_in_brain = vt.reshape(-1, order="F")[brain_idx]
    # patterns are indexed in C order of the VT voxels; the columns of the
    # series are brain voxels in F (NIfTI) order: map one to the other
    f_pos = np.flatnonzero(vt.reshape(-1, order="F"))
    c_of_f = np.ravel_multi_index(np.unravel_index(f_pos, shape, order="F"), shape)
    c_rank = np.argsort(np.argsort(c_of_f))  # VT voxel (F order) -> its C-order rank
    n_brain = brain_idx.size
    baseline = (BASELINE + 0.2 * anat).reshape(-1, order="F")[brain_idx].astype(np.float32)
    vox_per_vol = int(np.prod(shape))
    hdr = _nifti_header(shape + (n_vol,), affine, spec["zooms"], np.int16, t_r=T_R)
    vox_offset = 352  # 348-byte header + 4-byte empty extension flag
    hdr["vox_offset"] = vox_offset
    brain_series = np.empty((n_vol, n_brain), np.int16)

    with atomic_dir(root_final) as root:
        sub = root / f"subj{SUBJECT}"
        sub.mkdir(parents=True)
        progress(0.02, "bold")
        with open(sub / "bold.nii.gz", "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
            head = hdr.binaryblock + b"\x00" * (vox_offset - len(hdr.binaryblock))
            gz.write(head)
            volume = np.zeros(vox_per_vol, np.int16)
            for run in range(N_RUNS):
                sl = slice(run * N_PER_RUN, (run + 1) * N_PER_RUN)
                lab = labels_arr[sl]
                # category regressors convolved with the HRF
                signal = np.zeros((N_PER_RUN, n_vt), np.float32)
                for c in CATEGORIES:
                    box = (lab == c).astype(float)
                    reg = np.convolve(box, hrf)[:N_PER_RUN]
                    dev = RUN_CATEGORY * CATEGORY * spec["signal"] * rng.standard_normal(n_vt)
                    signal += np.outer(reg, (patterns[c] + dev)[c_rank]).astype(np.float32)
                    # the artefact: during the block itself, no HRF delay
                    signal += np.outer(box, ARTEFACT_SIGN[c] * artefacts[c_rank, run]
                                       ).astype(np.float32)
                noise = rng.standard_normal((N_PER_RUN, n_brain), dtype=np.float32)
                for t in range(1, N_PER_RUN):  # AR(1), unit variance
                    noise[t] = AR_RHO * noise[t - 1] + np.sqrt(1 - AR_RHO ** 2) * noise[t]
                noise *= NOISE
                noise += (RUN_OFFSET * rng.standard_normal(n_brain)).astype(np.float32)
                ramp = np.linspace(-1, 1, N_PER_RUN, dtype=np.float32)[:, None]
                noise += ramp * (RUN_DRIFT * rng.standard_normal(n_brain)).astype(np.float32)
                noise[:, vt_in_brain] += signal
                series = baseline * (1.0 + noise / 100.0)
                block = np.rint(series).astype(np.int16)
                brain_series[sl] = block
                for t in range(N_PER_RUN):
                    volume[brain_idx] = block[t]
                    gz.write(volume.tobytes())
                progress(0.02 + 0.83 * (run + 1) / N_RUNS, f"bold run {run + 1}/{N_RUNS}")

        progress(0.86, "masks and labels")
        zooms = spec["zooms"]
        _save(brain, affine, root / "mask.nii.gz", zooms, np.uint8)
        _save(vt, affine, sub / "mask4_vt.nii.gz", zooms, np.uint8)
        _save(anat, affine, sub / "anat.nii.gz", zooms, np.int16)
        for cat in ("face", "house"):
            diff = patterns[cat] - np.mean([patterns[c] for c in CATEGORIES], axis=0)
            for name, q in ((f"mask8_{cat}_vt.nii.gz", 0.6), (f"mask8b_{cat}_vt.nii.gz", 0.85)):
                sel = np.zeros(shape, bool)
                sel[vt] = diff >= np.quantile(diff, q)
                _save(sel, affine, sub / name, zooms, np.uint8)
        pd.DataFrame({"labels": labels, "chunks": chunks}).to_csv(
            sub / "labels.txt", sep=" ", index=False)
        md5 = [f"{_md5(sub / name)}  subj{SUBJECT}/{name}" for name in SUB_FILES]
        md5.append(f"{_md5(root / 'mask.nii.gz')}  mask.nii.gz")
        (root / "MD5SUMS").write_text("\n".join(md5) + "\n")

        # ---- planted truth
        np.savez_compressed(sub / "ground_truth.npz", vt_index=np.flatnonzero(vt.ravel()),
                            artefact_runs=artefacts,
                            **{f"pattern_{c}": patterns[c] for c in CATEGORIES})
        truth = {
            "size": size, "seed": seed, "t_r": T_R, "n_runs": N_RUNS,
            "volumes_per_run": N_PER_RUN, "block_length": BLOCK,
            "categories": list(CATEGORIES), "null_pair": list(NULL_PAIR),
            "note": f"{NULL_PAIR[0]} and {NULL_PAIR[1]} share one identical pattern "
                    "(no planted difference); every other pair differs. Patterns "
                    "are in percent signal change, VT voxels in C order (ground_truth.npz).",
            "generator_version": GENERATOR_VERSION,
            "n_vt_voxels": n_vt, "n_brain_voxels": int(brain.sum()),
            "pattern": {"shared": SHARED, "category": CATEGORY, "gain": CATEGORY_GAIN,
                        "animate": ANIMATE, "animate_set": list(ANIMATE_SET),
                        "signal": spec["signal"],
                        "note": "pattern_c = signal * (shared + category * (gain_c * own_c "
                                "+ animate * [c in animate_set] * animate_component)): "
                                "face vs house differs most, face vs cat less, bottle vs "
                                "chair not at all"},
            "noise": {"sd": NOISE, "ar1": AR_RHO, "run_offset": RUN_OFFSET,
                      "run_drift": RUN_DRIFT, "run_category": RUN_CATEGORY},
            "artefact": {
                "rms": spec["artefact"], "sign": ARTEFACT_SIGN,
                "note": "task-correlated artefact: in each run a new pattern "
                        "(ground_truth.npz artefact_runs[:, run], VT voxels in C order, %), "
                        "orthogonal to the planted patterns and to the other runs', added "
                        "during the blocks (no HRF delay) times the category's sign. "
                        "Nothing of it generalises to another run (leave-one-run-out), "
                        "but unshuffled KFold that cuts runs between folds exploits it: "
                        "KFold(5) scores a little higher than leave-one-run-out on face "
                        "vs cat. Its size is such that KFold's accuracy stays within "
                        "0.1 across 3 to 8 folds: with 18 samples a run, 3, 4 and 6 "
                        "folds fall on run boundaries (no leak), 5, 7 and 8 cut runs."},
        }
        (sub / "ground_truth.json").write_text(json.dumps(truth, indent=2))

        # ---- masked-data cache for the VT mask (what NiftiMasker returns)
        progress(0.9, "masked-data cache")
        # NiftiMasker returns voxels in C order of the mask: reorder
        raw_vt = brain_series[:, vt_in_brain][:, np.argsort(c_of_f)]
        for standardize in (False, True):
            _write_cache(sub / "bold.nii.gz", nib.load(str(sub / "mask4_vt.nii.gz")),
                         standardize, _masked_from_raw(raw_vt, standardize))
        from . import write_manifest

        write_manifest(root, params)
    progress(1.0, "done")
    return describe(data_dir)


def _legacy(root) -> bool:
    """A folder this generator wrote before manifests existed (planted truth inside)."""
    try:
        truth = json.loads((Path(root) / f"subj{SUBJECT}" / "ground_truth.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(truth, dict) and "generator_version" in truth


def _md5(path) -> str:
    from ..cache import file_digest

    return file_digest(path, "md5")


def describe(data_dir) -> dict:
    """JSON-able description of the dataset under ``data_dir``."""
    sub = subject_dir(data_dir)
    bold = nib.load(str(sub / "bold.nii.gz"))
    vt = np.asarray(nib.load(str(sub / "mask4_vt.nii.gz")).dataobj).astype(bool)
    truth_path = sub / "ground_truth.json"
    truth = json.loads(truth_path.read_text()) if truth_path.exists() else None
    return {
        "dataset": "haxby2001", "data_dir": str(Path(data_dir)),
        "func": str(sub / "bold.nii.gz"), "labels": str(sub / "labels.txt"),
        "mask_vt": str(sub / "mask4_vt.nii.gz"), "mask": str(dataset_dir(data_dir) / "mask.nii.gz"),
        "anat": str(sub / "anat.nii.gz"),
        "shape": list(bold.shape), "t_r": float(bold.header.get_zooms()[3]),
        "n_runs": N_RUNS, "vt_voxels": int(vt.sum()),
        "ground_truth": str(truth_path) if truth else None,
        "null_pair": truth["null_pair"] if truth else None,
    }

