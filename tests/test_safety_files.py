"""Never harm the user's files (issue 13, items 1-4 and 12).

* Writers replace only a regular file at the exact path asked for: a folder, a
  symbolic link, a FIFO or a device in the way is refused and left as it is.
* ``fmri-explorer data`` writes only into a new, empty or own dataset folder:
  a user's real ``haxby2001/`` is refused (exit 2), byte for byte intact.
* Nothing is written beside the user's input files: caches live in the cache
  folder, keyed by content.
* A damaged cache entry (truncated ``.npy``, truncated ridge ``.npz``) is
  computed again, gives the same numbers and is rewritten.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from analysis import cache
from analysis.atomic import atomic_path, save_nifti, write_bytes, write_text
from analysis.cli import main
from analysis.config import DATA_ENV
from analysis.datasets import MARKER, development as dev, haxby, miyawaki
from analysis.errors import DataError


def _img():
    return nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.eye(4))


def snapshot(folder) -> dict:
    """Every entry under ``folder`` (hidden ones too): relative path -> bytes, link target
    or a folder/FIFO tag."""
    folder = Path(folder)
    out = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", p.read_bytes(), st.st_ino)
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A cache folder of this test's own (``$FMRI_EXPLORER_DATA``)."""
    home = tmp_path / "cache-home"
    monkeypatch.setenv(DATA_ENV, str(home))
    haxby.clear_memory_cache()
    yield home
    haxby.clear_memory_cache()


# --------------------------------------------------------------------------- atomic writers

def test_directory_target_refused_and_intact(tmp_path):
    target = tmp_path / "out.nii.gz"
    target.mkdir()
    (target / "precious.txt").write_text("years of work")
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="out.nii.gz: is a directory"):
        save_nifti(_img(), target)
    with pytest.raises(DataError, match="is a directory"):
        write_text(target, "x")
    assert snapshot(tmp_path) == before


def test_symlink_target_refused_link_and_target_untouched(tmp_path):
    real = tmp_path / "real.nii.gz"
    real.write_bytes(b"the user's file")
    link = tmp_path / "link.nii.gz"
    link.symlink_to(real)
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="link.nii.gz: is a symbolic link"):
        save_nifti(_img(), link)
    assert snapshot(tmp_path) == before
    assert link.is_symlink() and real.read_bytes() == b"the user's file"


def test_fifo_target_refused_and_still_a_fifo(tmp_path):
    fifo = tmp_path / "pipe.nii"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="pipe.nii: is not a regular file"):
        save_nifti(_img(), fifo)
    with pytest.raises(DataError, match="not a regular file"):
        write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.nii"]


def test_char_device_target_refused(tmp_path):
    # a private null device node in the test's folder (the real /dev/null is never used)
    dev_node = tmp_path / "null.nii.gz"
    try:
        os.mknod(dev_node, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    with pytest.raises(DataError, match="not a regular file"):
        save_nifti(_img(), dev_node)
    assert stat.S_ISCHR(os.lstat(dev_node).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["null.nii.gz"]


def test_missing_parent_refused_and_not_created(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        save_nifti(_img(), tmp_path / "typo" / "map.nii.gz")
    assert not (tmp_path / "typo").exists()
    assert list(tmp_path.iterdir()) == []


def test_wrong_suffix_refused(tmp_path):
    with pytest.raises(DataError, match=r"map.txt: the output must end in \.nii\.gz or \.nii"):
        save_nifti(_img(), tmp_path / "map.txt")
    assert list(tmp_path.iterdir()) == []


def test_error_inside_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "map.nii.gz"
    save_nifti(_img(), target)
    old = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["map.nii.gz"]
    assert target.read_bytes() == old


def test_regular_file_is_replaced(tmp_path):
    target = tmp_path / "map.nii"
    target.write_bytes(b"old map")
    save_nifti(_img(), target)
    assert np.array_equal(nib.load(str(target)).get_fdata(), _img().get_fdata())
    assert [p.name for p in tmp_path.iterdir()] == ["map.nii"]


# --------------------------------------------------------------------------- fmri-explorer data

def _foreign_haxby(root: Path) -> None:
    sub = root / "haxby2001" / "subj2"
    sub.mkdir(parents=True)
    (sub / "bold.nii.gz").write_bytes(b"a user's real subject, not reproducible")
    (root / "haxby2001" / "MD5SUMS").write_text("d41d8cd98f00b204e9800998ecf8427e  subj2/bold\n")
    (root / "haxby2001" / "notes.txt").write_text("scanned 2019")


def test_data_refuses_a_users_folder(tmp_path):
    out = tmp_path / "nilearn_data"
    _foreign_haxby(out)
    (out / "other-study").mkdir()
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "data", "decoding",
                           "--size", "small", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(out / "haxby2001") in lines[0] and "refused" in lines[0]
    assert proc.stdout == ""
    assert snapshot(tmp_path) == before  # byte for byte, nothing added, nothing removed


@pytest.mark.parametrize("kind", ["file", "link"])
def test_data_refuses_a_file_or_link_in_the_way(tmp_path, capsys, kind):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    if kind == "file":
        (out / "miyawaki2008").write_text("not a folder")
    else:
        (out / "miyawaki2008").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(tmp_path)
    assert main(["data", "encoding", "--size", "small", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out / "miyawaki2008") in err
    assert snapshot(tmp_path) == before


def test_data_decoding_into_empty_then_again(tmp_path, capsys, no_network):
    out = tmp_path / "data"
    (out / "haxby2001").mkdir(parents=True)  # an empty folder is fine
    assert main(["data", "decoding", "--size", "small", "--out", str(out), "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    from nilearn.datasets import fetch_haxby

    bunch = fetch_haxby(data_dir=str(out), subjects=(2,), verbose=0)
    assert Path(bunch.func[0]) == Path(info["func"]) and Path(bunch.func[0]).is_file()
    assert Path(bunch.mask_vt[0]).is_file() and Path(bunch.session_target[0]).is_file()
    manifest = json.loads((out / "haxby2001" / MARKER).read_text())
    assert manifest["generator"] == "fmri-explorer"
    assert "subj2/bold.nii.gz" in manifest["files"]
    # nothing beside the dataset folder, no cache inside it
    assert [p.name for p in out.iterdir()] == ["haxby2001"]
    assert not [p for p in (out / "haxby2001").rglob("*") if "masked" in p.name]
    # again: already there, nothing written, the same description
    before = snapshot(out)
    assert main(["data", "decoding", "--size", "small", "--out", str(out), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out) == info
    assert snapshot(out) == before
    # another seed: only our own listed files are made again ...
    assert main(["data", "decoding", "--size", "small", "--seed", "1", "--out", str(out),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert haxby.is_present(out)
    assert json.loads((out / "haxby2001" / MARKER).read_text())["params"]["seed"] == 1
    assert snapshot(out)["haxby2001/subj2/bold.nii.gz"] != before["haxby2001/subj2/bold.nii.gz"]
    # ... and a file of the user's put into our folder stops that, intact
    (out / "haxby2001" / "subj2" / "my-notes.txt").write_text("mine")
    before = snapshot(out)
    assert main(["data", "decoding", "--size", "small", "--out", str(out), "--quiet"]) == 2
    assert "subj2/my-notes.txt" in capsys.readouterr().err
    assert snapshot(out) == before


def test_data_refuses_to_delete_a_changed_file_of_ours(tmp_path, capsys):
    out = tmp_path / "data"
    haxby.generate(out, size="small")
    labels = out / "haxby2001" / "subj2" / "labels.txt"
    text = labels.read_text()
    labels.write_text(text.replace("face", "Face", 1))  # the user edited it: same size
    before = snapshot(out)
    assert main(["data", "decoding", "--size", "small", "--seed", "2", "--out", str(out),
                 "--quiet"]) == 2
    assert "labels.txt" in capsys.readouterr().err
    assert snapshot(out) == before


def test_a_crafted_manifest_cannot_delete_outside_the_folder(tmp_path, capsys):
    """The manifest's names are not paths to trust: one reaching outside the dataset
    folder (edited or copied in by someone) never gets a file there deleted."""
    out = tmp_path / "data"
    haxby.generate(out, size="small")
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's")
    marker = out / "haxby2001" / MARKER
    manifest = json.loads(marker.read_text())
    manifest["files"]["../../precious.txt"] = {"size": victim.stat().st_size}
    marker.write_text(json.dumps(manifest))
    main(["data", "decoding", "--size", "small", "--seed", "3", "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert victim.read_text() == "the user's"


def test_data_encoding_refuses_then_works_twice(tmp_path, capsys, no_network):
    taken = tmp_path / "taken"
    (taken / "miyawaki2008" / "func").mkdir(parents=True)
    (taken / "miyawaki2008" / "func" / "data_random_run01.nii.gz").write_bytes(b"real")
    before = snapshot(taken)
    assert main(["data", "encoding", "--size", "small", "--out", str(taken), "--quiet"]) == 2
    assert "miyawaki2008" in capsys.readouterr().err
    assert snapshot(taken) == before

    out = tmp_path / "new"
    assert main(["data", "encoding", "--size", "small", "--out", str(out), "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    from nilearn.datasets import fetch_miyawaki2008

    bunch = fetch_miyawaki2008(data_dir=str(out), verbose=0)
    assert len(bunch.func) == 32 and all(Path(f).is_file() for f in bunch.func)
    assert (out / "miyawaki2008" / MARKER).is_file()
    before = snapshot(out)
    assert main(["data", "encoding", "--size", "small", "--out", str(out), "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert snapshot(out) == before
    assert {k: v for k, v in again.items() if k != "seconds"} == \
        {k: v for k, v in info.items() if k != "seconds"}


def test_data_connectivity_refuses_then_works_twice(tmp_path, capsys, no_network):
    taken = tmp_path / "taken"
    (taken / "development_fmri").mkdir(parents=True)
    (taken / "development_fmri" / "participants.tsv").write_text("participant_id\nsub-x\n")
    before = snapshot(taken)
    assert main(["data", "connectivity", "--size", "small", "--out", str(taken),
                 "--quiet"]) == 2
    assert "development_fmri" in capsys.readouterr().err
    assert snapshot(taken) == before

    out = tmp_path / "new"
    assert main(["data", "connectivity", "--size", "small", "--out", str(out), "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    from nilearn.datasets import fetch_development_fmri

    bunch = fetch_development_fmri(n_subjects=info["n_subjects"], data_dir=str(out), verbose=0)
    assert sorted(bunch.func) == sorted(info["func"])
    assert (out / "development_fmri" / MARKER).is_file()
    before = snapshot(out)
    assert main(["data", "connectivity", "--size", "small", "--out", str(out), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out) == info
    assert snapshot(out) == before
    assert dev.is_present(out)


def test_cache_folder_dataset_of_an_older_generator_is_made_again(private_cache):
    """In the app's cache folder, a folder from before manifests (ours) is made again."""
    from analysis.datasets import ensure_synthetic

    data_dir = ensure_synthetic("decoding", size="small")
    root = haxby.dataset_dir(data_dir)
    (root / MARKER).unlink()  # as written before manifests existed
    truth = haxby.subject_dir(data_dir) / "ground_truth.json"
    t = json.loads(truth.read_text())
    t["generator_version"] = haxby.GENERATOR_VERSION - 1
    truth.write_text(json.dumps(t))
    assert not haxby.is_present(data_dir)
    assert ensure_synthetic("decoding", size="small") == data_dir
    assert haxby.is_present(data_dir) and (root / MARKER).is_file()


# --------------------------------------------------------------------------- no file beside the data

def test_decoding_on_user_files_writes_nothing_beside_them(haxby_slice, tmp_path,
                                                          private_cache, capsys):
    user = tmp_path / "user"
    user.mkdir()
    for name in ("bold.nii.gz", "mask.nii.gz", "attributes.txt"):
        shutil.copy2(haxby_slice / name, user / name)
    user.chmod(0o555)  # read-only (root writes anyway: the listing must not change)
    before = snapshot(user)
    try:
        code = main(["decoding", "--func", str(user / "bold.nii.gz"),
                     "--mask", str(user / "mask.nii.gz"),
                     "--labels", str(user / "attributes.txt"),
                     "--conditions", "1", "4", "--cv", "run", "--json"])
    finally:
        user.chmod(0o755)
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["n_voxels"] == 530
    assert snapshot(user) == before
    key = cache.content_key(user / "bold.nii.gz")[:16]
    assert list((private_cache / "cache").glob(f"masked-{key}-*.npy"))
    # the shared read-only data was not written into either
    assert not [p for p in haxby_slice.iterdir() if p.name.startswith(".")]


def test_uploads_are_not_kept(decoding_dir, private_cache):
    data = haxby.load(decoding_dir, standardize=None)
    mask = nib.load(str(data.masks["ventral-temporal"]))
    X = haxby.masked_data(data.func, mask, True, shared=False)
    assert X.shape == (1452, haxby.SIZES["small"]["n_vt"]) and not X.flags.writeable
    assert len(haxby.MEMORY) == 0
    assert not (private_cache / "cache").exists() or \
        not list((private_cache / "cache").glob("masked-*"))
    # shared (datasets): kept, at most MEMORY_ENTRIES arrays in the process
    np.testing.assert_array_equal(haxby.masked_data(data.func, mask, True), X)
    assert len(haxby.MEMORY) == 1
    vt = np.asarray(mask.dataobj).astype(bool)
    idx = np.argwhere(vt)
    for k in range(haxby.MEMORY_ENTRIES + 1):
        sub = np.zeros_like(vt)
        for i, j, l in idx[k::haxby.MEMORY_ENTRIES + 2]:
            sub[i, j, l] = True
        haxby.masked_data(data.func, nib.Nifti1Image(sub.astype(np.uint8), mask.affine), False)
    assert len(haxby.MEMORY) == haxby.MEMORY_ENTRIES


# --------------------------------------------------------------------------- damaged cache entries

def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def test_truncated_masked_cache_is_made_again(decoding_dir, private_cache):
    data = haxby.load(decoding_dir, standardize=None)
    mask = nib.load(str(data.masks["ventral-temporal"]))
    X = np.array(haxby.masked_data(data.func, mask, True))
    entry = private_cache / "cache" / haxby.cache_name(data.func, mask, True)
    good = entry.read_bytes()
    _truncate(entry)
    haxby.clear_memory_cache()
    np.testing.assert_array_equal(haxby.masked_data(data.func, mask, True), X)
    assert entry.read_bytes() == good


def test_truncated_miyawaki_cache_is_made_again(encoding_dir, private_cache):
    first = miyawaki.load(encoding_dir)
    (entry,) = (private_cache / "cache").glob("miyawaki-*.npy")
    good = entry.read_bytes()
    _truncate(entry)
    again = miyawaki.load(encoding_dir)
    np.testing.assert_array_equal(again.fmri, first.fmri)
    assert entry.read_bytes() == good
    # another shape than the data's: not trusted either
    np.save(entry, np.zeros((3, 3)))
    np.testing.assert_array_equal(miyawaki.load(encoding_dir).fmri, first.fmri)
    assert entry.read_bytes() == good


def test_truncated_ridge_npz_is_made_again(encoding_dir, private_cache, ridge_builds):
    from analysis import encoding
    from analysis.encoding import EncodingAnalysis
    from analysis.encoding.engine import RidgeCV

    def fresh():
        encoding.clear_caches()  # as a new process would start
        return EncodingAnalysis(data_dir=str(encoding_dir), alpha=10.0, n_folds=3)

    try:
        r2 = fresh().mean_r2().values.copy()
        (entry,) = (private_cache / "cache").glob(f"{encoding.ENGINE_PREFIX}*.npz")
        _truncate(entry)
        built = ridge_builds["built"]
        damaged = fresh()
        np.testing.assert_array_equal(damaged.mean_r2().values, r2)
        assert ridge_builds["built"] == built + 1  # computed again, not read
        y, x, _, _ = damaged.samples()
        assert RidgeCV.load(entry, x, y).n_folds == 3  # rewritten whole
    finally:
        encoding.clear_caches()


def test_cache_helper(tmp_path, private_cache):
    entry = cache.cache_file("thing.npy")
    assert entry.parent == private_cache / "cache"
    assert cache.load_npy(entry) is None
    assert cache.save_npy(entry, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(cache.load_npy(entry), np.arange(6.0).reshape(2, 3))
    assert cache.load_npy(entry, check=lambda a: a.shape == (3, 2)) is None
    _truncate(entry)
    assert cache.load_npy(entry) is None
    # a folder at the entry's name: missing, and not replaced
    folder = cache.cache_file("folder.npy")
    folder.mkdir()
    assert cache.load_npy(folder) is None and not cache.save_npy(folder, np.zeros(2))
    assert folder.is_dir()
    # a cache folder that cannot be written: no error, just no cache
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert not cache.save_npy(blocker / "cache" / "x.npy", np.zeros(2))
    assert blocker.read_text() == "not a folder"
    # content, not location: a copy has the same key, a change another one
    a = tmp_path / "a.bin"
    a.write_bytes(b"x" * 1000)
    b = tmp_path / "b.bin"
    shutil.copy(a, b)
    assert cache.content_key(a) == cache.content_key(b)
    b.write_bytes(b"x" * 999 + b"y")
    assert cache.content_key(a) != cache.content_key(b)
