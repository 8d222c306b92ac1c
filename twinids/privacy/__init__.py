"""Differential privacy for twinids detectors: Opacus glue and fast per-sample gradients for LSTMs.

Importing this package registers PrivateLSTM's grad sampler and norm sampler with Opacus.
"""

from twinids.privacy import lstm_grad_sampler as _lstm_grad_sampler  # noqa: F401  (registers samplers)
from twinids.privacy.engine import PrivateTraining, make_private
from twinids.privacy.lstm import PrivateLSTM, to_private_lstm

__all__ = ["PrivateLSTM", "PrivateTraining", "make_private", "to_private_lstm"]
