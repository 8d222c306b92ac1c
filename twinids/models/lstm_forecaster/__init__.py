"""LSTM forecaster: a one-class detector whose attack signal is the gap between forecast and reading."""

from twinids.models.lstm_forecaster.torch_model import LSTMForecaster

__all__ = ["LSTMForecaster"]
