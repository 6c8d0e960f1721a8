"""Products of the responses with the stimuli, by rows: a test fold's (:class:`_TestRows`),
each block of consecutive samples' made once (:class:`RowBlocks`), all samples'
(:func:`_all_rows`), for :class:`analysis.encoding.engine.RidgeCV`; and
:func:`_one_blas_thread`, the BLAS setting of its small products."""

from __future__ import annotations

import numpy as np

from ..errors import DataError

_BLAS = None


def _one_blas_thread():
    """A context with every BLAS library on one thread.

    The products are small (100 features); on a few busy cores, BLAS threads mostly
    wait for each other (one thread was 3-4x faster per alpha on this 2-core machine,
    and a 10-fold decomposition took 19 s with two threads, 0.4 s with one).
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class _TestRows:
    """The products of some rows of the responses (float64): ``X[rows].T Y[rows]``, the
    column sums of both, how many rows, and the sum of squares about their own mean."""

    def __init__(self, xty, y_sum, x_sum, n, sst):
        self.xty, self.y_sum, self.x_sum, self.n, self.sst = xty, y_sum, x_sum, n, sst

    @classmethod
    def of(cls, x, y, test, dtype) -> "_TestRows":
        # the responses as ``dtype`` (as the seed's data), then float64 for the products
        yte = np.asarray(y[test], dtype=dtype).astype(np.float64, copy=False)
        if not yte.flags.owndata:   # a view of the caller's array: not to be changed
            yte = yte.copy()
        y_sum = yte.sum(axis=0)
        xty = x[test].T @ yte
        yte -= y_sum / len(test)          # our copy: centred in place
        return cls(xty, y_sum, x[test].sum(axis=0), len(test),
                   np.einsum("ij,ij->j", yte, yte))

    @classmethod
    def combined(cls, parts: list) -> "_TestRows":
        """The products of the rows of all ``parts`` (sums of squares pooled about the
        common mean, as Chan et al.'s parallel variance: no cancellation)."""
        if len(parts) == 1:
            return parts[0]
        n = sum(p.n for p in parts)
        y_sum = np.sum([p.y_sum for p in parts], axis=0)
        mean = y_sum / n
        sst = np.zeros_like(y_sum)
        xty = parts[0].xty.copy()
        for i, p in enumerate(parts):
            sst += p.sst + p.n * (p.y_sum / p.n - mean) ** 2
            if i:
                xty += p.xty
        return cls(xty, y_sum, np.sum([p.x_sum for p in parts], axis=0), n, sst)


class RowBlocks:
    """The response products of blocks of consecutive samples (e.g. a dataset's runs at a
    lag), from which :class:`RidgeCV` assembles each test fold's: a block inside a test
    fold is not read again. Made once for some stimuli and responses, it makes a new
    number of folds or CV scheme on the same samples cost the folds' decompositions only
    (their products of the responses are sums of the blocks', plus the rows of blocks a
    fold only cuts into).

    ``blocks``: ``(start, stop)`` sample ranges covering the samples in order. ``cancel``:
    called between blocks; when it returns True the products stop there and ``complete``
    is False (not to be used).
    """

    def __init__(self, x, y, blocks, dtype=np.float64, cancel=None):
        self.dtype = np.dtype(dtype)
        self.x = np.asarray(x, dtype=np.float64)
        self.blocks = [(int(a), int(b)) for a, b in blocks]
        n = self.x.shape[0]
        if [a for a, _ in self.blocks] != [0] + [b for _, b in self.blocks[:-1]] or \
                not self.blocks or self.blocks[-1][1] != n or any(b <= a for a, b in self.blocks):
            raise DataError("blocks must be ranges of samples covering them in order")
        self.n_samples = n
        self.complete = False
        self._parts = []
        with _one_blas_thread():
            for a, b in self.blocks:
                if cancel is not None and cancel():
                    return
                self._parts.append(_TestRows.of(self.x, y, np.arange(a, b), self.dtype))
        self.complete = True

    @property
    def nbytes(self) -> int:
        return int(sum(p.xty.nbytes for p in self._parts))

    def fits(self, x, dtype) -> bool:
        """Made, in full, for these stimuli (and responses read as ``dtype``)."""
        return (self.complete and np.dtype(dtype) == self.dtype
                and np.shape(x) == self.x.shape and np.array_equal(x, self.x))

    def rows(self, x, y, test) -> _TestRows:
        """The products of the ``test`` rows: the blocks inside them, and the rows of the
        blocks they only cut into read from ``y``."""
        inside = np.zeros(self.n_samples, bool)
        inside[test] = True
        parts, cut = [], []
        for (a, b), part in zip(self.blocks, self._parts):
            count = int(inside[a:b].sum())
            if count == b - a:
                parts.append(part)
            elif count:
                cut.append(a + np.flatnonzero(inside[a:b]))
        if cut:
            parts.append(_TestRows.of(x, y, np.concatenate(cut), self.dtype))
        return _TestRows.combined(parts)


def _all_rows(x, y, dtype, chunk: int = 256) -> tuple:
    """``(X.T Y, column sums of Y)`` in float64, ``chunk`` rows of ``Y`` at a time."""
    xty = np.zeros((x.shape[1], y.shape[1]))
    y_sum = np.zeros(y.shape[1])
    for start in range(0, x.shape[0], chunk):
        rows = np.asarray(y[start:start + chunk], dtype=dtype).astype(np.float64, copy=False)
        xty += x[start:start + chunk].T @ rows
        y_sum += rows.sum(axis=0)
    return xty, y_sum
