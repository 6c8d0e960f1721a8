"""Single-subject statistics of a seed map: a p value per voxel for r that accounts for
the autocorrelation of the cleaned (band-passed) series, and FDR across voxels.

Why not the textbook test
    For independent white samples, ``t = r sqrt((n - 2) / (1 - r^2))`` has Student's t
    distribution with ``n - 2`` degrees of freedom (Fisher's z with ``sd = 1/sqrt(n - 3)``
    is the same test, nearly). After a 0.01-0.1 Hz band-pass of 168 volumes at
    ``t_r = 2`` s the series hold about 40 independent values, not 168: that test
    (``p_method="naive"``) rejects a true ``r = 0`` about 30% of the time at p < 0.05.

The method (``p_method="effective-dof"``, the default)
    **Dutilleul's modified t-test** (Clifford, Richardson & Hemon 1989, *Biometrics* 45:
    123-134; Dutilleul 1993, *Biometrics* 49: 305-314): for two independent Gaussian series
    with covariance matrices ``Sx`` and ``Sy``, ``var(r) ~ tr(Bx By) / (tr(Bx) tr(By))`` with
    ``B = C S C`` (``C`` centres), and the effective sample size is::

        n_eff = 1 + tr(Bx) tr(By) / tr(Bx By)

    then ``t = r sqrt((n_eff - 2) / (1 - r^2))``, two-sided p from Student's t with
    ``n_eff - 2`` degrees of freedom. For stationary series this is Bartlett's (1946)
    ``n / (1 + 2 sum_k rho_x(k) rho_y(k))``; here the series are not stationary (the
    Butterworth filter's ends, the confounds' projection), so the covariances are built
    from what is known exactly and what is estimated:

    * the **cleaning operator** ``L`` (``n_volumes x n_volumes``): detrend, band-pass and
      confound regression are linear in time, the same for every voxel; ``L`` is
      nilearn's ``signal.clean`` applied to the identity with the subject's confounds
      (:func:`cleaning_operator`), so ``cleaned = L @ raw`` exactly;
    * each series' **raw noise spectrum**, piecewise constant in ``n_bands`` frequency
      bands (default ``ceil(sqrt(n_volumes))``, 13 for 168 volumes), estimated from the
      cleaned series' periodogram by the method of moments in the bands the filter
      passes, the others taking the nearest passed band's value (:func:`band_spectra`);
      the raw covariance is then ``V = sum_b theta_b Q_b`` (``Q_b`` the projector on
      band ``b``'s Fourier vectors) and ``S = L V L.T``.

    With white raw noise, ``n_eff`` is Worsley & Friston's (1995) effective degrees of
    freedom of the filter, ``tr(A)^2 / tr(A^2)`` (+1, ``A = L.T C L``); a voxel whose
    noise is redder within the band gets fewer. Bartlett's formula with the sample
    autocorrelations of the cleaned series (Tukey-tapered at ``sqrt(n)`` lags, or
    truncated), tried first, still rejects a true ``r = 0`` 8-17% of the time at
    p < 0.05 on data cleaned this way: the filter's ends make the series non-stationary
    (their variance is up to 3.5 times the middle's).

    All traces reduce to ``B x B`` band matrices computed once per cleaning
    (:class:`NoiseModel`), and each voxel's spectrum (``n_bands`` numbers, one FFT of the
    brain matrix) is cached with them: a new seed costs one ``(n_bands, n_voxels)``
    product, the t-distribution and a sort (:func:`seed_statistics`).

FDR
    Benjamini-Hochberg across the brain's voxels at ``q`` (default 0.05):
    :func:`fdr_threshold` (the largest ``p_(k) <= k q / m``). The map's threshold on
    ``|r|`` is the smallest ``|r|`` among the voxels that survive (with voxel-wise
    ``n_eff`` a voxel with a larger ``|r|`` can still fall short).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import DataError
from ..store import Store

#: The p-value methods: ``"effective-dof"`` (Dutilleul's modified t-test on the cleaned
#: series' covariances, the default) and ``"naive"`` (Student's t with ``n - 2`` dof, as
#: if the volumes were independent: anti-conservative; offered for comparison).
P_METHODS = ("effective-dof", "naive")
#: Benjamini-Hochberg's false discovery rate by default.
FDR_Q = 0.05
#: Bands whose gain through the cleaning is below this share of the largest are not
#: estimated (the filter removed them: their raw power cannot be seen).
PASS_TOLERANCE = 0.02
#: Per process: the operator terms and the voxels' band spectra of recent cleanings.
SPECTRA = Store("connectivity.noise_spectra", max_entries=4)


def check_method(method: str) -> str:
    if method not in P_METHODS:
        raise DataError(f"p_method must be one of {', '.join(P_METHODS)}, not {method!r}")
    return method


def check_q(q) -> float:
    q = float(q)
    if not np.isfinite(q) or not 0.0 < q < 1.0:
        raise DataError(f"the FDR q must be above 0 and below 1, not {q:g}")
    return q


# --------------------------------------------------------------------------- the cleaning

def cleaning_operator(subject, settings, n_volumes: int | None = None) -> np.ndarray:
    """The cleaning as a matrix ``L`` (``n_volumes x n_volumes``): ``cleaned = L @ raw``.

    nilearn's ``signal.clean`` with the settings and confounds :func:`clean_data` uses
    (detrend, Butterworth band-pass, confound projection; no standardisation, which only
    scales a column) applied to the identity. With ``high_variance_confounds`` the
    image is read to compute them, as the cleaning does.
    """
    import warnings

    from nilearn import signal

    from .cleaning import confound_matrix

    n = int(n_volumes or subject.n_volumes)
    image = None
    if settings.high_variance_confounds:      # the image as read for the cleaning
        from .rawdata import raw_data

        image = raw_data(subject).image_array()
    confounds = confound_matrix(subject, settings, image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return signal.clean(np.eye(n), confounds=confounds,
                            **settings.clean_kwargs(standardize=None))


@lru_cache(maxsize=8)
def fourier_basis(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The real orthonormal Fourier basis of length ``n``: ``(F (n, n), frequency (n,))``.

    Columns: the constant, then ``cos`` and ``sin`` of each frequency ``j = 1 .. n // 2``
    (no ``sin`` at ``n / 2`` for even ``n``); ``frequency[i]`` is column ``i``'s ``j``
    (cycles per ``n`` volumes).
    """
    t = np.arange(n)
    cols, freq = [np.full(n, 1.0 / np.sqrt(n))], [0]
    for j in range(1, n // 2 + 1):
        c = np.cos(2 * np.pi * j * t / n)
        cols.append(c / np.linalg.norm(c))
        freq.append(j)
        if 2 * j != n:
            s = np.sin(2 * np.pi * j * t / n)
            cols.append(s / np.linalg.norm(s))
            freq.append(j)
    f = np.array(cols).T
    f.flags.writeable = False
    return f, np.array(freq)


def default_bands(n_volumes: int) -> int:
    """``ceil(sqrt(n_volumes))`` bands (the usual ``sqrt(n)`` rule for the bandwidth of a
    spectrum estimated from ``n`` values), at most one per frequency."""
    return int(min(np.ceil(np.sqrt(n_volumes)), n_volumes // 2 + 1))


@dataclass
class NoiseModel:
    """The band matrices of one cleaning operator (see the module's docstring).

    Attributes
    ----------
    n_volumes, n_bands : int
    band : ndarray of int, shape (n_volumes,)
        The band of each column of :func:`fourier_basis`.
    gain : ndarray, shape (n_bands, n_bands)
        ``M[b, c] = ||F_b.T L F_c||^2``: expected cleaned power in band ``b`` per unit of
        raw power in band ``c``.
    passed : ndarray of bool, shape (n_bands,)
        The bands the cleaning lets through (estimated; each other band takes the value
        of the nearest passed one: :meth:`extension`).
    trace : ndarray, shape (n_bands,)
        ``h[b] = tr(F_b.T A F_b)``: ``tr(B) = h @ theta``.
    cross : ndarray, shape (n_bands, n_bands)
        ``K[b, c] = ||F_b.T A F_c||^2``: ``tr(Bx By) = theta_x @ K @ theta_y``.
    operator : ndarray, shape (n_volumes, n_volumes)
        ``C L``, the centred cleaning operator.
    """

    n_volumes: int
    n_bands: int
    band: np.ndarray
    gain: np.ndarray
    passed: np.ndarray
    trace: np.ndarray
    cross: np.ndarray
    operator: np.ndarray

    @classmethod
    def from_operator(cls, operator: np.ndarray, n_bands: int | None = None) -> "NoiseModel":
        op = np.asarray(operator, dtype=np.float64)
        n = op.shape[0]
        if op.ndim != 2 or op.shape != (n, n) or n < 4:
            raise DataError(f"a cleaning operator is a square matrix of 4 or more volumes, "
                            f"not {op.shape}")
        n_bands = default_bands(n) if n_bands is None else int(n_bands)
        if not 1 <= n_bands <= n // 2 + 1:
            raise DataError(f"n_bands must be between 1 and {n // 2 + 1}, not {n_bands}")
        f, freq = fourier_basis(n)
        band = (freq * n_bands) // (n // 2 + 1)
        lc = op - op.mean(axis=0)                  # C L: the series are centred
        a = lc.T @ lc
        faf = f.T @ a @ f
        onehot = np.zeros((n_bands, n))
        onehot[band, np.arange(n)] = 1.0
        gain = onehot @ (f.T @ lc @ f) ** 2 @ onehot.T
        diag = np.diag(gain)
        passed = diag > PASS_TOLERANCE * diag.max() if diag.max() > 0 else diag > 0
        return cls(n_volumes=n, n_bands=n_bands, band=band, gain=gain, passed=passed,
                   trace=onehot @ np.diag(faf), cross=onehot @ faf ** 2 @ onehot.T,
                   operator=lc)

    def extension(self) -> np.ndarray:
        """``E`` ``(n_bands, n_passed)``: each band takes the value of the nearest passed
        band (the raw spectrum is assumed continuous where the filter hides it; taking 0
        there would drop the power the filter's transition and ends let through)."""
        passed = np.flatnonzero(self.passed)
        out = np.zeros((self.n_bands, passed.size))
        if passed.size:
            nearest = np.abs(np.arange(self.n_bands)[:, None] - passed[None, :]).argmin(axis=1)
            out[np.arange(self.n_bands), nearest] = 1.0
        return out

    def _estimator(self) -> np.ndarray:
        """``E pinv((M E)_P)`` ``(n_bands, n_passed)``: the spectrum from the passed bands'
        periodogram."""
        e = self.extension()
        return e @ np.linalg.pinv((self.gain @ e)[self.passed])

    def periodogram(self, series: np.ndarray) -> np.ndarray:
        """Cleaned power per band ``m[b] = ||F_b.T x||^2`` of each column: ``(n_bands, n)``
        (one real FFT; the series are centred first)."""
        x = np.asarray(series, dtype=np.float64)
        one = x.ndim == 1
        x = x.reshape(x.shape[0], -1)
        if x.shape[0] != self.n_volumes:
            raise DataError(f"{x.shape[0]} volumes for a cleaning of {self.n_volumes}")
        x = x - x.mean(axis=0)
        n = self.n_volumes
        spectrum = np.fft.rfft(x, axis=0)
        power = spectrum.real ** 2
        power += spectrum.imag ** 2                # |X|^2 without the square root
        power *= 2.0 / n
        del spectrum
        power[0] /= 2.0
        if n % 2 == 0:
            power[-1] /= 2.0
        freq_band = (np.arange(n // 2 + 1) * self.n_bands) // (n // 2 + 1)
        sums = np.zeros((self.n_bands, n // 2 + 1))
        sums[freq_band, np.arange(n // 2 + 1)] = 1.0
        out = sums @ power
        return out[:, 0] if one else out

    def spectra(self, series: np.ndarray) -> np.ndarray:
        """Raw noise power per band of each column, ``theta``: ``(n_bands, n)`` (or
        ``(n_bands,)`` for one series); see :func:`band_spectra`."""
        m = self.periodogram(series)
        one = m.ndim == 1
        m = m.reshape(self.n_bands, -1)
        if not self.passed.any():
            theta = np.zeros_like(m)
        else:
            theta = self._estimator() @ m[self.passed]
        # power cannot be negative: a band whose estimate is (noise) below 0 gets a
        # thousandth of the series' largest band
        theta = np.maximum(theta, 1e-3 * theta.max(axis=0, initial=0.0))
        return theta[:, 0] if one else theta

    def effective_n(self, theta_x: np.ndarray, theta_y: np.ndarray) -> np.ndarray:
        """Dutilleul's ``1 + tr(Bx) tr(By) / tr(Bx By)`` for the columns of ``theta_x``
        ``(n_bands, n)`` and the one series ``theta_y`` ``(n_bands,)``; clipped to
        ``[3, n_volumes]`` (a series with no power: ``n_volumes``)."""
        theta_x = np.asarray(theta_x, dtype=np.float64).reshape(self.n_bands, -1)
        theta_y = np.asarray(theta_y, dtype=np.float64).reshape(self.n_bands)
        num = (self.trace @ theta_x) * (self.trace @ theta_y)
        den = theta_x.T @ (self.cross @ theta_y)
        with np.errstate(divide="ignore", invalid="ignore"):
            n_eff = 1.0 + num / den
        n_eff = np.where(np.isfinite(n_eff) & (den > 0), n_eff, self.n_volumes)
        return np.clip(n_eff, 3.0, self.n_volumes)


def band_spectra(model: NoiseModel, series: np.ndarray) -> np.ndarray:
    """Each column's raw noise power per band, by the method of moments:
    ``theta = E pinv((M E)_P) m_P`` (``m`` the cleaned periodogram per band, ``M`` the
    operator's band gains, ``P`` the bands the cleaning passes, ``E`` giving each other
    band the value of the nearest passed one), floored at a thousandth of the series'
    largest band. ``(n_bands, n)``."""
    return model.spectra(series)


# --------------------------------------------------------------------------- p and FDR

def correlation_p(r: np.ndarray, n_eff) -> np.ndarray:
    """Two-sided p of ``t = r sqrt((n_eff - 2) / (1 - r^2))`` under Student's t with
    ``n_eff - 2`` degrees of freedom (``n_eff`` a number or one per voxel); ``|r| = 1``
    gives 0, NaN stays NaN."""
    from scipy.special import betainc

    r = np.asarray(r, dtype=np.float64)
    dof = np.broadcast_to(np.asarray(n_eff, dtype=np.float64) - 2.0, r.shape)
    r2 = np.minimum(r * r, 1.0)
    # P(|T| > |t|) = I_{dof / (dof + t^2)}(dof / 2, 1 / 2), and dof / (dof + t^2) = 1 - r^2
    with np.errstate(invalid="ignore"):
        return betainc(dof / 2.0, 0.5, 1.0 - r2)


def fdr_threshold(p: np.ndarray, q: float = FDR_Q) -> float | None:
    """Benjamini-Hochberg's cut-off on p at false discovery rate ``q`` across the finite
    values of ``p``: the largest ``p_(k)`` with ``p_(k) <= k q / m`` (``m`` values); None
    when there is none (no voxel survives)."""
    q = check_q(q)
    p = np.asarray(p, dtype=np.float64).ravel()
    p = np.sort(p[np.isfinite(p)])
    m = p.size
    if m == 0:
        return None
    below = np.nonzero(p <= q * np.arange(1, m + 1) / m)[0]
    return float(p[below[-1]]) if below.size else None


def fdr_select(p: np.ndarray, q: float = FDR_Q) -> np.ndarray:
    """The values Benjamini-Hochberg keeps at ``q``: ``p <= fdr_threshold(p, q)``, a
    boolean mask of ``p``'s shape (NaN never kept)."""
    p = np.asarray(p, dtype=np.float64)
    cut = fdr_threshold(p, q)
    if cut is None:
        return np.zeros(p.shape, bool)
    return np.isfinite(p) & (p <= cut)


# --------------------------------------------------------------------------- a seed map

@dataclass
class SeedStats:
    """The p map of one seed map, and its FDR selection.

    Attributes
    ----------
    p : ndarray, shape (n_voxels,)
        Two-sided p of each voxel's r.
    n_eff : ndarray, shape (n_voxels,)
        Effective sample size (``n_volumes`` for every voxel with ``"naive"``); the
        t-test's degrees of freedom are ``n_eff - 2``.
    significant : ndarray of bool, shape (n_voxels,)
        Benjamini-Hochberg at ``fdr_q``.
    p_method : str
    fdr_q : float
    p_threshold : float or None
        The BH cut-off on p (None: no voxel survives).
    r_threshold : float or None
        The smallest ``|r|`` among the surviving voxels (None: none survives).
    n_volumes : int
    """

    p: np.ndarray
    n_eff: np.ndarray
    significant: np.ndarray
    p_method: str
    fdr_q: float
    p_threshold: float | None
    r_threshold: float | None
    n_volumes: int

    @property
    def dof(self) -> np.ndarray:
        """Degrees of freedom of each voxel's t-test: ``n_eff - 2``."""
        return self.n_eff - 2.0

    @property
    def n_significant(self) -> int:
        return int(self.significant.sum())

    @property
    def log10_p(self) -> np.ndarray:
        """``-log10 p`` (p below the smallest double: 307.65)."""
        return -np.log10(np.maximum(self.p, np.finfo(np.float64).tiny))

    def summary(self) -> dict:
        """JSON-able figures: ``p_method``, ``fdr_q``, ``n_eff`` (median over voxels),
        ``n_eff_range``, ``n_volumes``, ``fdr_p_threshold``, ``fdr_r_threshold``,
        ``n_voxels_fdr``."""
        return {"p_method": self.p_method, "fdr_q": self.fdr_q,
                "n_eff": float(np.median(self.n_eff)),
                "n_eff_range": [float(self.n_eff.min()), float(self.n_eff.max())],
                "n_volumes": self.n_volumes,
                "fdr_p_threshold": self.p_threshold, "fdr_r_threshold": self.r_threshold,
                "n_voxels_fdr": self.n_significant}


@dataclass
class VoxelSpectra:
    """What a new seed's p map needs from one cleaning: the :class:`NoiseModel` and the
    brain voxels' band spectra ``theta`` ``(n_bands, n_voxels)``."""

    model: NoiseModel
    theta: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.theta.nbytes + self.model.operator.nbytes)

    def seed_spectrum(self, seed_signal: np.ndarray) -> np.ndarray:
        """The seed's band spectrum ``(n_bands,)``."""
        return self.model.spectra(seed_signal)


def voxel_spectra(operator: np.ndarray, brain: np.ndarray, n_bands: int | None = None) -> VoxelSpectra:
    """The noise model of ``operator`` and the band spectra of the columns of ``brain``
    ``(n_volumes, n_voxels)``: once per cleaning (:func:`cached_spectra` keeps it)."""
    model = NoiseModel.from_operator(operator, n_bands)
    return VoxelSpectra(model=model, theta=model.spectra(brain))


def cached_spectra(subject, data) -> VoxelSpectra:
    """:func:`voxel_spectra` of a subject's cleaned data (``data``: a
    :class:`~analysis.connectivity.cleaning.CleanedData` of ``subject``), kept per
    (subject, settings) for the whole process; an upload's entry goes with its session."""
    def compute():
        op = cleaning_operator(subject, data.settings, data.n_volumes)
        return voxel_spectra(op, data.brain)

    return SPECTRA.get_or_compute((data.subject_key, data.settings), compute,
                                  owner=getattr(subject, "owner", None))


def seed_statistics(r: np.ndarray, seed_signal: np.ndarray | None = None,
                    spectra: VoxelSpectra | None = None, p_method: str = "effective-dof",
                    fdr_q: float = FDR_Q, n_volumes: int | None = None) -> SeedStats:
    """p per voxel for a seed map's ``r`` ``(n_voxels,)`` and the FDR selection.

    ``"effective-dof"`` needs the seed's time series ``(n_volumes,)`` and the cleaning's
    :class:`VoxelSpectra`; ``"naive"`` only ``n_volumes`` (or either of them).
    """
    p_method = check_method(p_method)
    fdr_q = check_q(fdr_q)
    r = np.clip(np.asarray(r, dtype=np.float64), -1.0, 1.0)
    if p_method == "effective-dof":
        if spectra is None or seed_signal is None:
            raise DataError("effective-dof p values need the seed's time series and the "
                            "voxels' spectra")
        if spectra.theta.shape[1] != r.size:
            raise DataError(f"{r.size} voxels in the map, {spectra.theta.shape[1]} spectra")
        model = spectra.model
        n = model.n_volumes
        n_eff = model.effective_n(spectra.theta, spectra.seed_spectrum(seed_signal))
    else:
        if n_volumes is None:
            n_volumes = (spectra.model.n_volumes if spectra is not None
                         else np.asarray(seed_signal).shape[0])
        n = int(n_volumes)
        if n < 4:
            raise DataError(f"a p value for r needs at least 4 volumes, not {n}")
        n_eff = np.full(r.shape, float(n))
    p = correlation_p(r, n_eff)
    p_cut = fdr_threshold(p, fdr_q)
    significant = (np.isfinite(p) & (p <= p_cut) if p_cut is not None
                   else np.zeros(p.shape, bool))
    r_cut = float(np.abs(r[significant]).min()) if significant.any() else None
    return SeedStats(p=p, n_eff=n_eff, significant=significant, p_method=p_method,
                     fdr_q=fdr_q, p_threshold=p_cut, r_threshold=r_cut, n_volumes=n)
