"""Hybrid LSTM + sparse autoencoder + multi-head self-attention detector family."""

from twinids.models.lstm_sae_mha.sparse_autoencoder import SparseAutoencoder
from twinids.models.lstm_sae_mha.torch_model import LSTMSAEMHADetector

__all__ = ["LSTMSAEMHADetector", "SparseAutoencoder"]
