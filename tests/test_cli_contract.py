"""The CLI's error contract (issue 13): every bad input exits 2 with one line.

Each row of the issue's table runs ``fmri-explorer`` in a subprocess and
checks: exit status 2 (0 for a closed stdout pipe), exactly one non-empty
line on stderr, no traceback, the option or file named in that line, within
60 s and with a peak resident memory under 2 GB (``wait4``'s rusage of the
child). The valid parts of the command lines are the real Haxby slice and the
small synthetic datasets.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

TIMEOUT_S = 60
MAX_RSS = 2 * 1024 ** 3


@dataclass
class Result:
    code: int
    out: str
    err: str
    max_rss: int  # bytes
    seconds: float

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def _env() -> dict:
    env = dict(os.environ)
    env["FMRI_EXPLORER_SIZE"] = "small"
    env.pop("FMRI_EXPLORER_MAX_IMAGE_MB", None)
    return env


def _peak_rss(pid: int) -> int | None:
    """The CLI's own peak RSS (bytes, ``VmHWM``) once it runs the CLI (after its exec);
    None before then or once it has gone.

    Not ``wait4``'s ``ru_maxrss``: a child forked from this test process starts as a copy
    of it, and Linux keeps that copy's high-water mark across the exec, so a CLI that used
    80 MB reported the 2.2 GB this process had grown to in a full run."""
    try:
        if b"analysis.cli" not in open(f"/proc/{pid}/cmdline", "rb").read():
            return None
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _wait(proc, timeout) -> tuple[int, int, float]:
    """Reap ``proc`` (its own peak RSS, watched every 10 ms: :func:`_peak_rss`), killing
    it after ``timeout`` s."""
    start = time.monotonic()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    peak = 0
    try:
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _peak_rss(proc.pid) or 0)
            time.sleep(0.01)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return proc.returncode, peak, time.monotonic() - start


def run_cli(*argv, cwd=None, timeout=TIMEOUT_S, close_stdout_after=None) -> Result:
    """Run ``python -m analysis.cli ARGV``; with ``close_stdout_after=N`` stdout is a
    pipe that the reader closes after N bytes (``| head -c N``)."""
    import tempfile

    cmd = [sys.executable, "-m", "analysis.cli", *map(str, argv)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdout = subprocess.PIPE if close_stdout_after is not None else out
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=err, stdin=subprocess.DEVNULL,
                                env=_env(), cwd=cwd)
        if close_stdout_after is not None:
            got = proc.stdout.read(close_stdout_after) if close_stdout_after else b""
            proc.stdout.close()
            out.write(got)
        code, rss, seconds = _wait(proc, timeout)
        out.seek(0)
        err.seek(0)
        return Result(code, out.read().decode(errors="replace"),
                      err.read().decode(errors="replace"), rss, seconds)


def assert_one_line_error(result: Result, *names: str) -> str:
    assert result.seconds < TIMEOUT_S, f"took {result.seconds:.0f} s"
    assert result.max_rss < MAX_RSS, f"peak memory {result.max_rss / 2**30:.2f} GB"
    assert "Traceback" not in result.err, result.err
    assert result.code == 2, (result.code, result.err)
    lines = result.err_lines
    assert len(lines) == 1, result.err
    line = lines[0]
    assert "error:" in line
    for name in names:
        assert name in line, (name, line)
    return line


def test_the_peak_memory_measured_is_the_clis_own():
    """The measure run_cli's callers check against MAX_RSS sees a child's allocation (320
    MB) and not this test process' own size."""
    code = ("# analysis.cli (as the CLI's command line reads)\n"
            "import time, numpy\na = numpy.ones(40_000_000)\ntime.sleep(0.3)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    _, peak, _ = _wait(proc, TIMEOUT_S)
    assert 300 * 2**20 < peak < 1024 * 2**20, peak


# --------------------------------------------------------------------------- bad files

@pytest.fixture(scope="module")
def bad(tmp_path_factory, haxby_slice) -> Path:
    """Bad inputs made from the real slice: truncated, bombs, NaN, a folder."""
    d = tmp_path_factory.mktemp("bad-inputs")
    raw = (haxby_slice / "bold.nii.gz").read_bytes()
    (d / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    img = nib.load(str(haxby_slice / "bold.nii.gz"))
    data = np.asarray(img.dataobj)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(d / "whole.nii"))
    whole = (d / "whole.nii").read_bytes()
    (d / "truncated.nii").write_bytes(whole[: len(whole) // 2])
    # ~99 bytes: a gzipped header claiming 512^3 x 1000 float64 (1 TB)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((512, 512, 512, 1000))
    hdr.set_data_dtype(np.float64)
    (d / "bomb.nii.gz").write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4 + b"\0" * 8))
    assert (d / "bomb.nii.gz").stat().st_size < 200
    # NaN in every mask voxel (a float image)
    mask = np.asarray(nib.load(str(haxby_slice / "mask.nii.gz")).dataobj).astype(bool)
    nan = data.astype(np.float32)
    nan[mask] = np.nan
    hdr = img.header.copy()
    hdr.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(nan, img.affine, hdr), str(d / "nan.nii.gz"))
    (d / "R").mkdir()
    (d / "R" / "keep.txt").write_text("the user's file")
    return d


def _decoding(haxby_slice, func=None):
    return ["decoding", "--func", func or haxby_slice / "bold.nii.gz",
            "--mask", haxby_slice / "mask.nii.gz", "--labels", haxby_slice / "attributes.txt",
            "--conditions", "1", "4"]


def _connectivity(haxby_slice, func=None):
    return ["connectivity", "--func", func or haxby_slice / "bold.nii.gz", "--seed", "0", "0", "0"]


FILE_ROWS = [
    # (id, command, file, words expected in the line)
    ("truncated-gz-connectivity", "connectivity", "truncated.nii.gz", ["truncated or damaged"]),
    ("truncated-gz-decoding", "decoding", "truncated.nii.gz", ["truncated or damaged"]),
    ("truncated-nii-decoding", "decoding", "truncated.nii", ["truncated or damaged"]),
    ("truncated-nii-connectivity", "connectivity", "truncated.nii", ["truncated or damaged"]),
    ("header-bomb-decoding", "decoding", "bomb.nii.gz", ["GB", "limit", "FMRI_EXPLORER_MAX_IMAGE_MB"]),
    ("header-bomb-connectivity", "connectivity", "bomb.nii.gz", ["GB", "limit"]),
    ("nan-image-decoding", "decoding", "nan.nii.gz", ["NaN or infinite"]),
]


@pytest.mark.parametrize("command, name, words", [r[1:] for r in FILE_ROWS],
                         ids=[r[0] for r in FILE_ROWS])
def test_bad_file(bad, haxby_slice, command, name, words):
    build = _decoding if command == "decoding" else _connectivity
    line = assert_one_line_error(run_cli(*build(haxby_slice, bad / name)), name, *words)
    assert "MemoryError" not in line and "constant" not in line


# --------------------------------------------------------------------------- bad options

OPTION_ROWS = [
    # (id, command, extra arguments, option named)
    ("t-r-nan", "connectivity", ["--t-r", "nan"], "--t-r"),
    ("t-r-0", "connectivity", ["--t-r", "0"], "--t-r"),
    ("high-pass-nan", "connectivity", ["--high-pass", "nan"], "--high-pass"),
    ("low-pass-inf", "connectivity", ["--low-pass", "inf"], "--low-pass"),
    ("band-reversed", "connectivity", ["--high-pass", "0.1", "--low-pass", "0.01"], "--high-pass"),
    ("low-pass-nyquist", "connectivity", ["--t-r", "2", "--low-pass", "0.5"], "--low-pass"),
    ("smoothing-1e9", "connectivity", ["--smoothing", "1e9"], "--smoothing"),
    ("smoothing-nan", "connectivity", ["--smoothing", "nan"], "--smoothing"),
    ("n-peaks-neg", "connectivity", ["--n-peaks", "-1"], "--n-peaks"),
    ("threshold-nan", "connectivity", ["--threshold", "nan"], "--threshold"),
    ("radius-nan", "connectivity", ["--radius", "nan"], "--radius"),
    ("radius-inf", "connectivity", ["--radius", "inf"], "--radius"),
    ("seed-nan", "connectivity", ["--seed", "0", "nan", "0"], "--seed"),
    ("n-folds-0", "decoding", ["--cv", "kfold", "--n-folds", "0"], "--n-folds"),
    ("n-folds-1", "decoding", ["--cv", "kfold", "--n-folds", "1"], "--n-folds"),
    ("n-folds-1e6", "decoding", ["--cv", "kfold", "--n-folds", "1e6"], "--n-folds"),
    ("n-folds-over-samples", "decoding", ["--cv", "kfold", "--n-folds", "5000"], "--n-folds"),
    ("C-nan", "decoding", ["--C", "nan"], "--C"),
    ("C-inf", "decoding", ["--C", "inf"], "--C"),
    ("C-1e300", "decoding", ["--C", "1e300"], "--C"),
    ("C-0", "decoding", ["--C", "0"], "--C"),
    ("n-jobs-0", "decoding", ["--n-jobs", "0"], "--n-jobs"),
    ("n-jobs-1e5", "decoding", ["--n-jobs", "1e5"], "--n-jobs"),
    ("n-permutations-neg", "decoding", ["--n-permutations", "-5"], "--n-permutations"),
    ("n-permutations-huge", "decoding", ["--n-permutations", "10000000"], "--n-permutations"),
    ("alpha-nan", "encoding", ["--alpha", "nan"], "--alpha"),
    ("alpha-neg", "encoding", ["--alpha", "-1"], "--alpha"),
    ("lag-neg", "encoding", ["--lag", "-1"], "--lag"),
    ("encoding-n-folds-1", "encoding", ["--n-folds", "1"], "--n-folds"),
    ("encoding-threshold-nan", "encoding", ["--threshold", "nan"], "--threshold"),
    ("group-n-subjects-1", "group", ["--n-subjects", "1"], "--n-subjects"),
    ("group-workers-0", "group", ["--workers", "0"], "--workers"),
    ("group-timeout-nan", "group", ["--timeout", "nan"], "--timeout"),
    ("group-smoothing-inf", "group", ["--smoothing", "inf"], "--smoothing"),
    ("group-seed-inf", "group", ["--seed", "inf", "0", "0"], "--seed"),
    ("group-t-r-nan", "group", ["--t-r", "nan"], "--t-r"),
]


def _argv(command, extra, haxby_slice):
    if command == "decoding":
        return _decoding(haxby_slice) + extra
    if command == "connectivity":
        argv = _connectivity(haxby_slice)
        if "--seed" in extra:
            argv = argv[:-4]
        return argv + extra
    if command == "group":
        return ["group"] + ([] if "--seed" in extra else ["--seed", "0", "-52", "18"]) + extra
    return [command] + extra


@pytest.mark.parametrize("command, extra, option", [r[1:] for r in OPTION_ROWS],
                         ids=[r[0] for r in OPTION_ROWS])
def test_bad_option(haxby_slice, command, extra, option):
    line = assert_one_line_error(run_cli(*_argv(command, extra, haxby_slice)), option)
    assert "nan mm" not in line


# --------------------------------------------------------------------------- --out

OUT_COMMANDS = {
    "decoding": lambda s: _decoding(s),
    "connectivity": lambda s: _connectivity(s),
    "encoding": lambda s: ["encoding"],
    "group": lambda s: ["group", "--seed", "0", "-52", "18"],
}


@pytest.mark.parametrize("command", list(OUT_COMMANDS))
def test_out_not_nifti_refused(command, haxby_slice, tmp_path):
    target = tmp_path / "map.txt"
    result = run_cli(*OUT_COMMANDS[command](haxby_slice), "--out", target)
    assert_one_line_error(result, "map.txt", ".nii")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", list(OUT_COMMANDS))
def test_out_directory_left_intact(command, haxby_slice, bad):
    result = run_cli(*OUT_COMMANDS[command](haxby_slice), "--out", bad / "R")
    assert_one_line_error(result, "R: is a directory")
    assert (bad / "R").is_dir()
    assert (bad / "R" / "keep.txt").read_text() == "the user's file"


def test_out_missing_folder_and_mean_z(haxby_slice, tmp_path):
    result = run_cli("decoding", *_decoding(haxby_slice)[1:],
                     "--out", tmp_path / "missing" / "w.nii.gz")
    assert_one_line_error(result, "w.nii.gz", "does not exist")
    result = run_cli("group", "--seed", "0", "-52", "18", "--out", tmp_path / "t.nii.gz",
                     "--out-mean-z", tmp_path / "z.txt")
    assert_one_line_error(result, "z.txt")


# --------------------------------------------------------------------------- argparse and pipes

def test_argparse_errors_are_one_line(haxby_slice):
    assert_one_line_error(run_cli("connectivity", "--func", haxby_slice / "bold.nii.gz"),
                          "--seed")  # required option missing
    assert_one_line_error(run_cli("decoding", "--classifier", "tree"), "--classifier")
    assert_one_line_error(run_cli("decoding", "--C", "abc"), "--C")
    assert_one_line_error(run_cli("nonsense"), "nonsense")
    helped = run_cli("decoding", "--help")
    assert helped.code == 0 and "--n-folds" in helped.out


def test_closed_pipe_is_not_an_error(encoding_dir):
    for after in (400, 0):  # `| head -c 400`, and a reader that is gone at once
        result = run_cli("encoding", "--data", encoding_dir, "--json",
                         close_stdout_after=after)
        assert result.code == 0, result.err
        assert result.err.strip() == "", result.err
        assert result.out.startswith("{") if after else result.out == ""


# --------------------------------------------------------------------------- main()'s fallbacks

@pytest.mark.parametrize("exc, words", [
    (MemoryError(), ["not enough memory"]),
    (EOFError("Compressed file ended before the end-of-stream marker was reached"),
     ["truncated or damaged"]),
    (OSError(5, "Input/output error", "/data/sub-01_bold.nii.gz"),
     ["sub-01_bold.nii.gz", "Input/output error"]),
    (ValueError("first line\nsecond line"), ["first line second line"]),
])
def test_main_fallbacks_one_line(monkeypatch, capsys, exc, words):
    import zlib  # noqa: F401 - zlib.error goes the same way as EOFError

    from analysis import cli
    from analysis.commands import encoding

    def boom(args):
        raise exc

    monkeypatch.setattr(encoding, "run", boom)
    code = cli.main(["encoding"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    for word in words:
        assert word in lines[0]


def test_damaged_file_named_in_fallback(bad, haxby_slice, capsys, monkeypatch):
    """Damage found only while reading (e.g. inside a nilearn masker) names the bad file."""
    from analysis import cli
    from analysis.commands import decoding

    def boom(args):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(decoding, "run", boom)
    code = cli.main([str(a) for a in _decoding(haxby_slice, bad / "truncated.nii.gz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "truncated.nii.gz: truncated or damaged image data" in err
