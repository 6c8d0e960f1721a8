"""Reporting (issue 17): cluster tables next to nilearn's, and atlas region look-ups.

On the seed's r map of the synthetic development data (``full``: MNI 4 mm grid,
~29k brain voxels), side by side on the same map, threshold and minimum size:

* :func:`analysis.reporting.cluster_table` (one labelling pass, regions named with
  Harvard-Oxford) and ``nilearn.reporting.get_clusters_table`` (the reference, which
  works cluster by cluster on the whole volume), their ratio, and whether the two
  tables are the same (peaks, values, sizes, order); target: our table under 50 ms;
* the Harvard-Oxford label image: made from the 4D probability file (first process),
  read back from the cache folder, in memory; ``region_at`` for one point (the
  crosshair) and ``regions_at`` for 1,000 points.
"""

from __future__ import annotations

import warnings

import numpy as np

SETTINGS = [(0.5, 0), (0.5, 5), (0.3, 0)]   # (|r| threshold, minimum cluster size in voxels)


def _same(ours, ref) -> bool:
    if len(ours) != len(ref):
        return False
    if ref.empty:
        return True
    xyz = np.allclose(ours[["peak_x", "peak_y", "peak_z"]].to_numpy(),
                      ref[["X", "Y", "Z"]].to_numpy(float), atol=1e-6)
    values = np.array_equal(ours["peak_value"].to_numpy(), ref["Peak Stat"].to_numpy(float))
    return bool(xyz and values)


def run(bench) -> None:
    import time

    from nilearn.reporting import get_clusters_table

    from analysis.connectivity import SeedConnectivity
    from analysis.reporting import atlas as A
    from analysis.reporting import cluster_table, region_at, regions_at

    warnings.filterwarnings("ignore")
    import os

    bench.row("load average (1 min) at start", round(os.getloadavg()[0], 2), "",
              "2 cores, shared: timings and ratios need an idle machine")

    # ---- atlas ---------------------------------------------------------------------------
    from analysis.cache import cache_dir

    for old in cache_dir().glob("atlas-harvard_oxford-*.npy"):
        old.unlink()
    A.LABELS.clear()
    start = time.perf_counter()
    A.label_image("harvard_oxford")
    bench.row("Harvard-Oxford label image from the 4D file (once)", time.perf_counter() - start,
              "s", "streamed, 113 volumes")
    A.LABELS.clear()
    start = time.perf_counter()
    A.label_image("harvard_oxford")
    bench.row("Harvard-Oxford label image from the cache folder", time.perf_counter() - start,
              "s", "a new process")
    bench.time("region_at, one point (crosshair)",
               lambda: region_at("harvard_oxford", (0, -52, 18)), repeat=7, number=100)
    points = np.random.default_rng(0).uniform(-70, 70, size=(1000, 3))
    bench.time("regions_at, 1,000 points", lambda: regions_at("harvard_oxford", points),
               repeat=7, number=10)

    # ---- cluster tables ------------------------------------------------------------------
    model = SeedConnectivity(data_dir=str(bench.data_dir("connectivity")))
    img = model.to_nifti()
    values, affine = np.asarray(img.dataobj), img.affine
    bench.row("map: brain voxels", int(np.count_nonzero(values)), "",
              f"grid {'x'.join(map(str, values.shape))}")
    for threshold, min_size in SETTINGS:
        label = f"|r| > {threshold:g}, min size {min_size}"
        ours = cluster_table(values, affine, threshold, min_size, True)
        ref = get_clusters_table(img, threshold, cluster_threshold=min_size, two_sided=True)
        bench.row(f"{label}: clusters, rows", f"{ours['cluster'].nunique()}, {len(ours)}")
        bench.row(f"{label}: same table as nilearn", "yes" if _same(ours, ref) else "NO")
        fast = f"{label}: cluster_table (+ regions)"
        slow = f"{label}: nilearn get_clusters_table"
        t = bench.time(fast, lambda: cluster_table(values, affine, threshold, min_size, True),
                       repeat=7, warmup=1)
        bench.row(f"{label}: target < 50 ms", "met" if t < 0.05 else "NOT met")
        bench.time(slow, lambda: get_clusters_table(img, threshold, cluster_threshold=min_size,
                                                     two_sided=True),
                   repeat=1 if bench.quick else 3)
        bench.ratio(f"{label}: nilearn / ours", slow, fast)
