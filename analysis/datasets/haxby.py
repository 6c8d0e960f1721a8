"""Haxby 2001-like synthetic dataset (decoding), real Haxby data and user files.

Layout written by :func:`generate`, exactly what
``nilearn.datasets.fetch_haxby(data_dir=data_dir)`` (``subjects=(2,)``) expects,
so the seed tutorial runs unchanged on it and nothing is downloaded::

    data_dir/haxby2001/mask.nii.gz            whole-brain mask
    data_dir/haxby2001/MD5SUMS                checksum list (fetcher reads it)
    data_dir/haxby2001/subj2/bold.nii.gz      4D int16, (x, y, z, 1452), TR 2.5 s
    data_dir/haxby2001/subj2/labels.txt       ``labels chunks`` header, one row a volume
    data_dir/haxby2001/subj2/mask4_vt.nii.gz  ventral-temporal mask (~464 voxels)
    data_dir/haxby2001/subj2/mask8*_{face,house}_vt.nii.gz   face/house sub-masks
    data_dir/haxby2001/subj2/anat.nii.gz      anatomical background
    data_dir/haxby2001/subj2/ground_truth.json, ground_truth.npz   planted truth
    data_dir/haxby2001/.fmri-explorer-synthetic.json   manifest: the files written (ours)

The masked-data cache (per functional file's content, mask and standardize)
lives in the cache folder (``data_home()/cache/masked-*.npy``), never beside
the data.

Planted structure (the same at both sizes):

* 12 runs x 121 volumes; each run: 6 rest, then the 8 categories in 9-volume
  blocks (random order per run) separated by 6 or 5 rest volumes, 6 rest at the
  end; exactly the real file's layout.
* Inside the VT mask, every category has a distributed, spatially smooth
  pattern; patterns overlap (a shared visual response plus category
  components, orthonormalised in VT so every pair differs by the same amount
  whatever the seed). Boxcars are convolved with the Glover HRF.
* **No planted difference**: ``bottle`` and ``chair`` share one identical
  pattern (:data:`NULL_PAIR`): decoding them is at chance; the permutation
  test's negative control.
* Run effects: a run-specific offset pattern and drift, and a run-specific
  deviation of each category's pattern (the response to a category differs a
  little from run to run); AR(1) noise.
* A task-correlated artefact (like head motion locked to the blocks): in each
  run a new pattern, orthogonal to every planted pattern and to the other
  runs' (so nothing of it carries over to another run), present during the
  blocks themselves (not delayed by the HRF), with the sign
  :data:`ARTEFACT_SIGN` of the block's category (face +, cat -: within a run
  they move apart along it; bottle and chair: none). A held-out run's artefact
  is new to the classifier, but unshuffled ``KFold(5)`` on face vs cat
  (216 samples, 18 a run, in time order) cuts 4 of the 12 runs between a
  training and a test fold: a third of the test samples then share their
  run's artefact with training samples of known label. So KFold scores higher
  than leave-one-run-out, as on real data (the seed's lesson).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..atomic import atomic_dir, ensure_writable_dir
from ..cache import cache_file, content_key, load_npy, save_npy
from ..config import check_size
from ..errors import DataError
from ..progress import null_progress, scaled

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
                 n_vt=464, signal=0.8, artefact=2.2),
    "small": dict(shape=(20, 24, 20), zooms=(7.0, 7.5, 7.5), radii=(8.5, 10.5, 8.5),
                  n_vt=150, signal=1.4, artefact=3.2),
}
BASELINE = 1000.0
NOISE = 4.0          # white/AR(1) noise sd, % of baseline
AR_RHO = 0.3
RUN_OFFSET = 0.2     # run-specific offset pattern sd, %
RUN_DRIFT = 0.5      # linear drift amplitude within a run, %
RUN_CATEGORY = 0.3   # run-specific deviation of each category pattern, relative
SHARED = 0.8         # shared visual response (every category vs rest), %
CATEGORY = 0.55      # category-specific pattern rms in VT, %
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
GENERATOR_VERSION = 2


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
        [_smooth_field(rng, shape, sigma)[vt] for c in CATEGORIES]))
    fields = {c: fields[:, i] for i, c in enumerate(CATEGORIES)}
    fields[NULL_PAIR[1]] = fields[NULL_PAIR[0]]  # identical: no planted difference
    shared = np.abs(_smooth_field(rng, shape, sigma)[vt]) * SHARED
    patterns = {c: spec["signal"] * (shared + CATEGORY * fields[c]) for c in CATEGORIES}
    # one artefact pattern a run, orthogonal to the planted patterns and to each other
    planted = np.column_stack([shared] + [fields[c] for c in CATEGORIES])
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
                        "KFold(5) scores higher than leave-one-run-out on face vs cat."},
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


# --------------------------------------------------------------------------- masking cache

def _masked_from_raw(raw: np.ndarray, standardize) -> np.ndarray:
    """What ``NiftiMasker(mask, standardize=...)`` returns from raw masked values."""
    from nilearn.signal import clean

    x = raw.astype(np.float32)
    return clean(x, detrend=False, standardize=_std_arg(standardize),
                 standardize_confounds=True, t_r=None, low_pass=None, high_pass=None,
                 ensure_finite=False)


def _std_arg(standardize):
    # nilearn >= 0.14: True means "zscore_sample" (the seed's standardize=True)
    return "zscore_sample" if standardize is True else (None if standardize is False else standardize)


def _mask_digest(mask_img) -> str:
    data = np.asarray(mask_img.dataobj).astype(bool)
    h = hashlib.sha1(np.packbits(data).tobytes())
    h.update(str(data.shape).encode())
    h.update(np.round(np.asarray(mask_img.affine, float), 4).tobytes())
    return h.hexdigest()[:16]


def cache_name(func_path, mask_img, standardize) -> str:
    """File name of the ``.npy`` cache of one (functional file's content, mask, standardize)."""
    return (f"masked-{content_key(func_path)[:16]}-{_mask_digest(mask_img)}"
            f"-std{_std_arg(standardize)}.npy")


def _write_cache(func_path, mask_img, standardize, data) -> Path | None:
    """Keep the masked data in the cache folder (never beside the data); None if the
    cache folder cannot be written (just slower next time)."""
    path = cache_file(cache_name(func_path, mask_img, standardize))
    return path if save_npy(path, data) else None


def _read_cache(func_path, mask_img, standardize):
    """The cached masked data, or None (missing, unreadable, truncated, other shape)."""
    n_voxels = int(np.asarray(mask_img.dataobj).astype(bool).sum())
    try:
        n_volumes = int(nib.load(str(func_path)).shape[3])
    except Exception:  # noqa: BLE001 - the loader reports a bad file; here: check less
        n_volumes = None

    def fits(a):
        return (a.ndim == 2 and a.dtype.kind == "f" and a.shape[1] == n_voxels
                and (n_volumes is None or a.shape[0] == n_volumes))

    return load_npy(cache_file(cache_name(func_path, mask_img, standardize)), check=fits)


#: Masked arrays kept in this process (the most recently used), shared by every session.
MEMORY_ENTRIES = 4
_MEMORY: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_MEMORY_LOCK = threading.Lock()
_KEY_LOCKS: dict = {}


def _compute_masked(func_path, mask_img, standardize, progress) -> np.ndarray:
    from nilearn.maskers import NiftiMasker

    from ..io import check_masked

    progress(0.05, "masking the functional image (once)")
    masker = NiftiMasker(mask_img=mask_img, standardize=_std_arg(standardize))
    data = masker.fit_transform(str(func_path))
    check_masked(data, func_path)
    return data


def masked_data(func_path, mask_img, standardize=True, progress=None,
                shared: bool = True) -> np.ndarray:
    """Masked data ``(n_volumes, n_voxels)`` as ``NiftiMasker(mask, standardize).fit_transform``.

    With ``shared`` (datasets), cached twice: in this process (the
    :data:`MEMORY_ENTRIES` most recently used, shared by every session) and as
    ``.npy`` in the cache folder (``data_home()/cache``, never beside the
    data), keyed on the functional file's content, the mask's content and
    ``standardize``; an unreadable cache entry is computed again and rewritten.
    With ``shared=False`` (a session's uploads) nothing is kept: neither in the
    process nor on disk. Computed with nilearn's ``NiftiMasker`` when missing.
    The array is read-only.
    """
    progress = progress or null_progress
    from ..volumes import load_img

    mask_img = load_img(mask_img)
    if not shared:
        data = np.asarray(_compute_masked(func_path, mask_img, standardize, progress))
        data.setflags(write=False)
        progress(1.0, "masked data ready")
        return data
    key = (content_key(func_path), _mask_digest(mask_img), str(_std_arg(standardize)))
    with _MEMORY_LOCK:
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:
        with _MEMORY_LOCK:
            if key in _MEMORY:
                _MEMORY.move_to_end(key)
                return _MEMORY[key]
        data = _read_cache(func_path, mask_img, standardize)
        if data is None:
            data = _compute_masked(func_path, mask_img, standardize, progress)
            _write_cache(func_path, mask_img, standardize, data)
        data = np.asarray(data)
        data.setflags(write=False)
        with _MEMORY_LOCK:
            _MEMORY[key] = data
            _MEMORY.move_to_end(key)
            while len(_MEMORY) > MEMORY_ENTRIES:
                _MEMORY.popitem(last=False)
            _KEY_LOCKS.pop(key, None)
        progress(1.0, "masked data ready")
        return data


def clear_memory_cache() -> None:
    """Forget the in-process masked-data cache (tests, benchmarks)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


# --------------------------------------------------------------------------- loading

@dataclass
class HaxbyData:
    """One subject's decoding data, wherever it came from.

    ``func`` is the 4D image path, ``labels`` a DataFrame with ``labels`` and
    ``chunks`` (and ``code`` for numeric files), ``masks`` maps mask names
    (``ventral-temporal``, ``whole brain``) to mask images or paths,
    ``anat`` the background (path or image or None).
    """

    func: Path
    labels: pd.DataFrame
    masks: dict
    anat: object = None
    t_r: float | None = T_R
    source: str = "synthetic"
    n_volumes: int = 0
    info: dict = field(default_factory=dict)


def load(data_dir=None, size: str | None = None, subject: int = SUBJECT,
         standardize=True, progress=None) -> HaxbyData:
    """A Haxby dataset (synthetic or real) read through ``nilearn.datasets.fetch_haxby``.

    ``data_dir`` defaults to the synthetic cache of ``size`` (generated on
    first use). Real data: point ``data_dir`` at a folder where ``fetch_haxby``
    has downloaded it. The ventral-temporal masked data (``standardize`` as
    ``NiftiMasker``; ``None`` to skip) is read into the process cache too (from
    the ``.npy`` cache; masked with nilearn the first time) and kept in
    ``info["masked_shape"]``.
    """
    from nilearn.datasets import fetch_haxby

    from ..io import load_func, load_labels

    if data_dir is None:
        from . import ensure_synthetic

        data_dir = ensure_synthetic("decoding", size=size)
    data_dir = Path(data_dir)
    if not is_present(data_dir):
        raise DataError("no Haxby dataset here (expected haxby2001/subj2/bold.nii.gz, "
                        "labels.txt, mask4_vt.nii.gz ...; make one with "
                        "'fmri-explorer data decoding --out DIR')", data_dir)
    bunch = fetch_haxby(data_dir=str(data_dir), subjects=(subject,), verbose=0)
    func = Path(bunch.func[0])
    img = load_func(func)
    labels = load_labels(bunch.session_target[0], n_volumes=img.shape[3])
    synthetic = (Path(func).parent / "ground_truth.json").exists()
    info = {"data_dir": str(data_dir), "subject": subject,
            "labels": str(bunch.session_target[0]),
            "mask_files": {"ventral-temporal": str(bunch.mask_vt[0]),
                           "whole brain": str(bunch.mask)}}
    if standardize is not None:
        from ..io import load_mask

        X = masked_data(func, load_mask(bunch.mask_vt[0], img), standardize, progress=progress)
        info["masked_shape"] = list(X.shape)
    return HaxbyData(
        func=func, labels=labels,
        masks={"ventral-temporal": Path(bunch.mask_vt[0]), "whole brain": Path(bunch.mask)},
        anat=Path(bunch.anat[0]) if bunch.anat and bunch.anat[0] else None,
        t_r=float(bunch.t_r), source="synthetic" if synthetic else "nilearn fetch_haxby",
        n_volumes=int(img.shape[3]), info=info)


def load_user(func, mask, labels, label_names=None) -> HaxbyData:
    """The user's own files: a 4D NIfTI, a mask and a labels file (see :mod:`analysis.io`)."""
    from ..io import load_func, load_labels, load_mask, t_r_of

    img = load_func(func)
    mask_img = load_mask(mask, img)
    table = load_labels(labels, n_volumes=img.shape[3], names=label_names)
    return HaxbyData(func=Path(func), labels=table, masks={"user mask": mask_img},
                     anat=None, t_r=t_r_of(img), source="user files",
                     n_volumes=int(img.shape[3]),
                     info={"mask": str(mask), "labels": str(labels),
                           "mask_files": ({"user mask": str(mask)}
                                          if isinstance(mask, (str, Path)) else {})})
