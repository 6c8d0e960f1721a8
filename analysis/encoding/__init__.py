"""Encoding analysis (Miyawaki 2008): voxel-wise ridge from 10x10 images to voxels.

* :mod:`.engine`: the fast ridge CV (pure numpy): every fold decomposed once, then any
  alpha re-scores every voxel (:class:`RidgeCV`), the folds (:func:`make_folds`);
* :mod:`.reference`: the seed's scikit-learn code, the engine's reference
  (:func:`reference_r2`) and the Lasso receptive fields (:func:`lasso_receptive_field`);
* :mod:`.model`: :class:`EncodingAnalysis`, the Param class the notebook, the CLI and
  the dashboard share, and the process' caches (stores) it reads through.
"""

from .engine import CV_SCHEMES, FORMAT, RidgeCV, check_alpha, make_folds  # noqa: F401
from .model import (DATA, ENGINE_FILES, ENGINE_PREFIX, ENGINES, INDEX, LASSO,  # noqa: F401
                    PATHS, R2, R2_CACHE_SIZE, SAMPLES, EncodingAnalysis,
                    clear_caches, load_data)
from .reference import lasso_receptive_field, reference_r2  # noqa: F401
