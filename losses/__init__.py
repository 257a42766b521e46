"""Training losses built on CTC and soft-DTW: pure functions in the style of optax.

Each loss returns its unreduced per-example value `(B,)`; the caller reduces.
"""

from losses._bce import bce_loss
from losses._ctc import CTCAlignment
from losses._ctc import ctc_alignment
from losses._ctc import ctc_loss
from losses._ctc import ctc_loss_with_forward_probs
from losses._mctc import mctc_loss
from losses._soft_dtw import soft_dtw_loss
from losses._triplet import batch_triplet_loss
from losses._triplet import triplet_loss

__all__ = [
    "CTCAlignment",
    "batch_triplet_loss",
    "bce_loss",
    "ctc_alignment",
    "ctc_loss",
    "ctc_loss_with_forward_probs",
    "mctc_loss",
    "soft_dtw_loss",
    "triplet_loss",
]
