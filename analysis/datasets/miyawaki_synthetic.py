"""The synthetic Miyawaki-like dataset: :func:`generate` and its planted truth.

Retinotopic receptive fields on a two-hemisphere visual-cortex mask, random
and figure runs written in the fetcher's layout (:mod:`.miyawaki_layout`),
ROI masks, and the planted truth (``synthetic_truth.npz``, read back by
:func:`load_truth`); the planted structure is described in
:mod:`analysis.datasets.miyawaki`, which re-exports every name here.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from ..atomic import atomic_dir, ensure_writable_dir
from ..errors import DataError
from ..progress import null_progress
from .miyawaki_layout import (GENERATOR_VERSION, INFO_FILE, LAG, N_FIGURE_RUNS,
                              N_RANDOM_RUNS, NAME, STIMULUS_SHAPE, T_R, TRUTH_FILE,
                              dataset_dir, func_files, is_present, label_files, mask_files)

#: Per-size shapes. ``radii`` are the hemispheres' ellipsoid radii in voxels.
SIZES = {
    "full": dict(shape=(29, 25, 23), radii=(7.1, 10.35, 9.45), n_random=145, n_figure=131),
    "small": dict(shape=(13, 10, 9), radii=(3.0, 4.0, 3.6), n_random=60, n_figure=10),
}

#: Volumes each random image stays on screen (6 s at TR 2 s, as in the study): the
#: label files repeat an image on consecutive rows.
RANDOM_BLOCK = 3
#: The HRF-like kernel ``(t/p)^a exp(a (1 - t/p))`` (t in volumes): its peak ``p`` at
#: ``HRF_PEAK`` volumes (3.6 s), shape ``a = HRF_SHAPE`` (larger is narrower), over
#: ``HRF_LENGTH`` volumes (16 s). Sampled at whole volumes it is largest at ``LAG``.
HRF_PEAK = 1.8
HRF_SHAPE = 4.0
HRF_LENGTH = 8


def hrf_kernel() -> np.ndarray:
    """The response to one volume of drive, per volume of delay (``HRF_LENGTH``,):
    largest at ``LAG`` volumes (0.98), about half of that one volume earlier or later
    and little after 4 volumes. A model at lag ``LAG - 1`` or ``LAG + 1`` thus explains
    less than at ``LAG`` but more than nothing (images stay for ``RANDOM_BLOCK`` volumes)."""
    u = np.arange(HRF_LENGTH) / HRF_PEAK
    return (u ** HRF_SHAPE * np.exp(HRF_SHAPE * (1 - u))).astype(np.float32)


def _random_stimuli(n: int, rng) -> np.ndarray:
    """Random binary images, each held for ``RANDOM_BLOCK`` volumes (``n`` rows)."""
    n_images = -(-n // RANDOM_BLOCK)
    images = (rng.random((n_images,) + STIMULUS_SHAPE) < 0.5).astype(int)
    return np.repeat(images, RANDOM_BLOCK, axis=0)[:n]


# --------------------------------------------------------------------------- generation

def _geometry(size: str):
    """Mask, hemisphere, retinotopic centres and ROI masks on the size's grid."""
    spec = SIZES[size]
    shape = spec["shape"]
    rx, ry, rz = spec["radii"]
    i, j, k = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    cx, cy, cz = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0, (shape[2] - 1) / 2.0
    off = rx * 0.72  # hemisphere centres left and right of the midline
    left = ((i - (cx - off)) / rx) ** 2 + ((j - cy) / ry) ** 2 + ((k - cz) / rz) ** 2 <= 1
    right = ((i - (cx + off)) / rx) ** 2 + ((j - cy) / ry) ** 2 + ((k - cz) / rz) ** 2 <= 1
    left &= i < cx
    right &= i > cx
    mask = left | right
    # Retinotopy (smooth within a hemisphere): left hemisphere (x < 0 in mm,
    # RAS) sees the right hemifield; posterior (small j) is foveal, anterior
    # peripheral; dorsal (large k) sees the lower field (large rows).
    t_y = np.clip((j - (cy - ry)) / (2 * ry), 0, 1)
    t_z = np.clip((k - (cz - rz)) / (2 * rz), 0, 1)
    ecc = 0.3 + 4.0 * t_y  # pixels from the vertical meridian
    col = np.where(left, 4.5 + ecc, 4.5 - ecc)
    row = 0.3 + 8.4 * t_z
    # a gentle dependence on the distance from the midline keeps it 3D
    row = row + 0.6 * np.sin(np.pi * np.abs(i - cx) / (2 * rx))
    centre = np.stack([np.clip(row, 0, 9), np.clip(col, 0, 9)], axis=-1)
    return mask, left, centre


def _affine(shape) -> np.ndarray:
    # 3 mm voxels, RAS, occipital cortex around y = -80 mm
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-3.0 * (shape[0] - 1) / 2, -80 - 3.0 * (shape[1] - 1) / 2,
                     -3.0 * (shape[2] - 1) / 2]
    return affine


def _receptive_fields(centres: np.ndarray, sigma: float = 0.75) -> np.ndarray:
    """Gaussian blobs ``(n_voxels, 10, 10)`` peaking at 1 at each centre (row, col)."""
    rows = np.arange(STIMULUS_SHAPE[0])[None, :, None]
    cols = np.arange(STIMULUS_SHAPE[1])[None, None, :]
    d2 = (rows - centres[:, 0, None, None]) ** 2 + (cols - centres[:, 1, None, None]) ** 2
    return np.exp(-d2 / (2 * sigma ** 2))


def _figure_stimuli(n: int) -> np.ndarray:
    """Blocks of simple figures (square, frame, cross, X, bars) with rest between."""
    shapes = []
    sq = np.zeros(STIMULUS_SHAPE, int); sq[3:7, 3:7] = 1; shapes.append(sq)
    fr = np.zeros(STIMULUS_SHAPE, int); fr[1:9, 1:9] = 1; fr[3:7, 3:7] = 0; shapes.append(fr)
    cr = np.zeros(STIMULUS_SHAPE, int); cr[4:6, :] = 1; cr[:, 4:6] = 1; shapes.append(cr)
    ex = np.eye(10, dtype=int) | np.fliplr(np.eye(10, dtype=int)); shapes.append(ex)
    hb = np.zeros(STIMULUS_SHAPE, int); hb[[1, 2, 7, 8], :] = 1; shapes.append(hb)
    vb = hb.T.copy(); shapes.append(vb)
    out = np.zeros((n,) + STIMULUS_SHAPE, int)
    block, rest = 6, 2
    t, s = rest, 0
    while t < n:
        out[t:t + block] = shapes[s % len(shapes)]
        t += block + rest
        s += 1
    return out


def _write_csv(path: Path, stimuli: np.ndarray) -> None:
    flat = stimuli.reshape(stimuli.shape[0], -1, order="F")
    path.write_text("\n".join(",".join(map(str, row)) for row in flat) + "\n")


def _run_data(stimuli, rf_flat, amplitude, baseline, mask_idx, shape, rng, noise_sd):
    """One run as int16 ``shape + (n,)``: the drive convolved with the HRF + drifts + noise."""
    n = stimuli.shape[0]
    x = stimuli.reshape(n, -1, order="F").astype(np.float32)
    # x rows are in Fortran order; rf_flat columns are too
    drive = x @ rf_flat  # (n, n_voxels)
    kernel = hrf_kernel()
    signal = np.zeros_like(drive)
    for lag, weight in enumerate(kernel):
        if lag < n:
            signal[lag:] += weight * drive[:n - lag]
    # centre the driven part (an image's mean response is a constant offset)
    signal -= 0.5 * (rf_flat.sum(axis=0) * kernel.sum())
    n_vox = rf_flat.shape[1]
    tt = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    drift = (rng.normal(0, 3, n_vox).astype(np.float32) * tt
             + rng.normal(0, 1.5, n_vox).astype(np.float32)
             * np.cos(np.pi * (tt + 1) * rng.uniform(0.5, 1.5)))
    noise = rng.standard_normal((n, n_vox), dtype=np.float32)
    series = (baseline.ravel()[mask_idx][None, :] + noise_sd * (amplitude * signal + noise + drift))
    vol = np.broadcast_to(baseline.astype(np.int16)[..., None], shape + (n,)).copy()
    flat = vol.reshape(-1, n)
    flat[mask_idx] = np.rint(series.T).astype(np.int16)
    return vol


def generate(data_dir, size: str = "full", seed: int = 0, progress=None) -> dict:
    """Write the synthetic Miyawaki-like dataset under ``data_dir/miyawaki2008``.

    Deterministic for a given ``seed``. Written into a temporary folder and
    renamed into place, so a half-written dataset is never left behind.
    Returns a JSON-able description (paths, shapes, TR, sizes).
    """
    from ..config import check_size

    progress = progress or null_progress
    size = check_size(size)
    spec = SIZES[size]
    shape = spec["shape"]
    t0 = time.perf_counter()
    data_dir = ensure_writable_dir(data_dir)
    from . import claim_folder, write_manifest

    params = {"dataset": NAME, "size": size, "seed": int(seed),
              "generator_version": GENERATOR_VERSION}
    if claim_folder(dataset_dir(data_dir), params, lambda: is_present(data_dir), _legacy):
        progress(1.0, "already there")
        return describe(data_dir)
    progress(0.0, "geometry")

    mask, left, centre_vol = _geometry(size)
    affine = _affine(shape)
    mask_idx = np.flatnonzero(mask.ravel())  # C order == nilearn's mask order
    n_vox = mask_idx.size
    rng = np.random.default_rng(seed)
    centres = centre_vol.reshape(-1, 2)[mask_idx]
    responsive = rng.random(n_vox) >= 0.25
    amplitude = np.where(responsive, rng.uniform(0.35, 1.3, n_vox), 0.0).astype(np.float32)
    rf = _receptive_fields(centres)
    rf_flat = rf.reshape(n_vox, -1, order="F").T.astype(np.float32)  # (100, n_vox), Fortran pixels
    peak = np.stack(np.unravel_index(rf.reshape(n_vox, -1).argmax(axis=1), STIMULUS_SHAPE), axis=1)

    # anatomical-looking background: brighter cortex ribbon, darker outside
    i, j, k = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    c = [(s - 1) / 2 for s in shape]
    r = np.sqrt(((i - c[0]) / (shape[0] / 2)) ** 2 + ((j - c[1]) / (shape[1] / 1.6)) ** 2
                + ((k - c[2]) / (shape[2] / 2)) ** 2)
    bg_rng = np.random.default_rng(seed + 1)
    background = np.where(r < 1.05, 600 + 400 * np.cos(6 * r) ** 2, 0.0)
    background = background + 20 * bg_rng.standard_normal(shape) * (r < 1.05)
    background[mask] = np.maximum(background[mask], 800)
    baseline = np.rint(background).astype(np.float32)
    noise_sd = 8.0

    seeds = np.random.SeedSequence(seed).spawn(N_RANDOM_RUNS + N_FIGURE_RUNS)
    jobs = []
    for r_i in range(N_RANDOM_RUNS):
        srng = np.random.default_rng(seeds[r_i])
        stim = _random_stimuli(spec["n_random"], srng)
        jobs.append(("random", r_i + 1, stim, srng))
    for f_i in range(N_FIGURE_RUNS):
        srng = np.random.default_rng(seeds[N_RANDOM_RUNS + f_i])
        jobs.append(("figure", f_i + 1, _figure_stimuli(spec["n_figure"]), srng))

    target = dataset_dir(data_dir)
    with atomic_dir(target) as tmp:
        for sub in ("func", "label", "mask"):
            (tmp / sub).mkdir(parents=True)
        nib.save(nib.Nifti1Image(background.astype(np.float32), affine), tmp / "bg.nii.gz")
        _write_rois(tmp, mask, left, centres, mask_idx, affine)

        def write(job):
            kind, idx, stim, srng = job
            vol = _run_data(stim, rf_flat, amplitude, baseline, mask_idx, shape, srng, noise_sd)
            img = nib.Nifti1Image(vol, affine)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = T_R
            nib.save(img, tmp / "func" / f"data_{kind}_run{idx:02d}.nii.gz")
            _write_csv(tmp / "label" / f"data_{kind}_run{idx:02d}_label.csv", stim)

        done = 0
        with ThreadPoolExecutor(max_workers=2) as pool:
            for _ in pool.map(write, jobs):
                done += 1
                progress(0.05 + 0.9 * done / len(jobs), f"run {done}/{len(jobs)}")

        np.savez(tmp / TRUTH_FILE, centre=centres.astype(np.float64), peak=peak,
                 responsive=responsive, amplitude=amplitude, rf=rf.astype(np.float32),
                 mask_index=mask_idx, lag=LAG, seed=seed, hrf=hrf_kernel(),
                 random_block=RANDOM_BLOCK)
        info = {
            "dataset": "encoding", "name": NAME, "size": size, "seed": seed,
            "data_dir": str(data_dir), "path": str(target),
            "generator_version": GENERATOR_VERSION,
            "shape": list(shape), "n_voxels": int(n_vox), "t_r": T_R, "lag": LAG,
            "random_block": RANDOM_BLOCK, "hrf": [round(float(h), 4) for h in hrf_kernel()],
            "n_random_runs": N_RANDOM_RUNS, "n_figure_runs": N_FIGURE_RUNS,
            "volumes_per_random_run": spec["n_random"],
            "volumes_per_figure_run": spec["n_figure"],
            "n_samples": N_RANDOM_RUNS * (spec["n_random"] - LAG),
            "n_responsive": int(responsive.sum()),
            "mask": str(target / "mask" / "mask.nii.gz"),
            "background": str(target / "bg.nii.gz"),
            "func_random": [str(target / f) for f in func_files("random")],
            "label_random": [str(target / f) for f in label_files("random")],
            "truth": str(target / TRUTH_FILE),
        }
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2))
        write_manifest(tmp, params)
    info["seconds"] = round(time.perf_counter() - t0, 2)
    progress(1.0, "done")
    return info


def _legacy(root) -> bool:
    """A folder this generator wrote before manifests existed (its description inside)."""
    try:
        info = json.loads((Path(root) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("name") == NAME and "truth" in info


def describe(data_dir) -> dict:
    """The description :func:`generate` printed, for the synthetic folder under ``data_dir``
    (paths as they are now)."""
    data_dir = Path(data_dir)
    target = dataset_dir(data_dir)
    try:
        info = json.loads((target / INFO_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"no readable description ({exc})", target / INFO_FILE) from None
    info.update({
        "data_dir": str(data_dir), "path": str(target),
        "mask": str(target / "mask" / "mask.nii.gz"),
        "background": str(target / "bg.nii.gz"),
        "func_random": [str(target / f) for f in func_files("random")],
        "label_random": [str(target / f) for f in label_files("random")],
        "truth": str(target / TRUTH_FILE)})
    return info


def _write_rois(root: Path, mask, left, centres, mask_idx, affine) -> None:
    """``mask/mask.nii.gz`` and the ROI files nilearn lists, from the planted maps."""
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), root / "mask" / "mask.nii.gz")
    ecc = np.hypot(centres[:, 0] - 4.5, centres[:, 1] - 4.5)  # eccentricity in pixels
    row = centres[:, 0]
    hemi_left = left.ravel()[mask_idx]
    n_bins = 11
    # visual areas by antero-posterior band; dorsal/ventral by row (lower field = dorsal)
    j = np.unravel_index(mask_idx, mask.shape)[1]
    band = np.digitize(j, np.quantile(j, [0.35, 0.6, 0.8]))
    dorsal = row >= 4.5
    areas = {"V1d": (band == 0) & dorsal, "V1v": (band == 0) & ~dorsal,
             "V2d": (band == 1) & dorsal, "V2v": (band == 1) & ~dorsal,
             "V3": (band == 2) & dorsal, "VP": (band == 2) & ~dorsal,
             "V3A": (band == 3) & dorsal, "V4v": (band == 3) & ~dorsal}
    for name in mask_files():
        stem = Path(name).name.replace(".nii.gz", "")
        if stem == "mask":
            continue
        hemi = hemi_left if stem.startswith("LH") else ~hemi_left
        roi = stem[2:]
        if roi.startswith("lag"):
            lo, hi = (int(v) for v in roi[3:].split("to"))
            sel = hemi & (ecc * (n_bins - 1) / ecc.max() >= lo) & (ecc * (n_bins - 1) / ecc.max() < hi)
        else:
            sel = hemi & areas[roi]
        vol = np.zeros(mask.size, np.uint8)
        vol[mask_idx[sel]] = 1
        nib.save(nib.Nifti1Image(vol.reshape(mask.shape), affine), root / name)


def load_truth(data_dir) -> dict | None:
    """The planted truth of a synthetic folder (None for a real dataset)."""
    path = dataset_dir(data_dir) / TRUTH_FILE
    if not path.is_file():
        return None
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
