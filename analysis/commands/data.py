"""``fmri-explorer data {encoding,decoding,connectivity} --size {small,full} --out DIR
[--n-subjects N]``."""

from __future__ import annotations

from pathlib import Path

from .. import jobs
from ..atomic import ensure_writable_dir
from ..config import SIZES
from ..datasets import MODULES, dataset_module
from ..progress import console_progress
from ..errors import DataError
from . import print_json
from .validate import int_range

#: the real development dataset's subjects (fetch_development_fmri)
MAX_SUBJECTS = 155


def add_parser(sub):
    p = sub.add_parser(
        "data", help="write a synthetic dataset in nilearn's fetcher layout",
        description="Write a synthetic dataset into DIR in the file layout of the "
                    "matching nilearn fetcher, so that fetch_*(data_dir=DIR) returns it "
                    "without network. Prints JSON with the paths, shapes and TR. "
                    "Writes only into a new or empty dataset folder, or one it wrote itself "
                    "(its .fmri-explorer-synthetic.json manifest): a folder holding anything "
                    "else (e.g. real data in DIR/haxby2001) is refused (exit 2), never "
                    "replaced. An own, complete folder is left as it is.")
    p.add_argument("dataset", choices=list(MODULES))
    p.add_argument("--size", choices=SIZES, default="full")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="nilearn data_dir to write into")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--n-subjects", type=int_range(1, MAX_SUBJECTS, message=(
                       f"n_subjects must be a whole number from 1 to {MAX_SUBJECTS}")),
                   default=None, metavar="N",
                   help="connectivity only: number of subjects (default: the size's, 4 at "
                        "full size); adults first, then children")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    extra = {}
    if args.n_subjects is not None:
        if args.dataset != "connectivity":
            raise DataError(f"--n-subjects is for the connectivity dataset, not {args.dataset}")
        extra["n_subjects"] = args.n_subjects
    out = ensure_writable_dir(args.out)
    progress = None if args.quiet else console_progress(f"{args.dataset} ({args.size})")
    info = jobs.run(lambda job: dataset_module(args.dataset).generate(
        out, size=args.size, seed=args.seed, progress=job.progress, **extra),
        name=f"{args.dataset} dataset", progress=progress)
    print_json(info)
    return 0
