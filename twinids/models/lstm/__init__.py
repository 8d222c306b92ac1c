"""LSTM detector family."""

from twinids.models.lstm.torch_model import LSTMDetector

__all__ = ["LSTMDetector"]
