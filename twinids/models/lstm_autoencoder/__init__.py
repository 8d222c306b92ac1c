"""LSTM autoencoder: a one-class detector whose attack signal is the window's reconstruction error."""

from twinids.models.lstm_autoencoder.torch_model import LSTMAutoencoder

__all__ = ["LSTMAutoencoder"]
