"""sdtw: soft-DTW, DTW and relatives as compiled JAX kernels.

Every function takes one (N, M) cost matrix and is a pure JAX function: it
works under jit, vmap and grad, in float32 and float64. The gradient of
soft-DTW is the expected alignment, computed by a custom VJP in O(NM).
"""

from sdtw import costs
from sdtw._api import accumulated_cost
from sdtw._api import alignment_matrix
from sdtw._api import checked
from sdtw._api import divergence
from sdtw._api import dtw
from sdtw._api import dtw_path
from sdtw._api import expected_alignment
from sdtw._api import sharp_soft_dtw
from sdtw._api import soft_dtw
from sdtw._api import subsequence_dtw

__all__ = [
    "accumulated_cost",
    "alignment_matrix",
    "checked",
    "costs",
    "divergence",
    "dtw",
    "dtw_path",
    "expected_alignment",
    "sharp_soft_dtw",
    "soft_dtw",
    "subsequence_dtw",
]

__version__ = "0.1.0"
