"""One-class detectors: LightningModules that learn normal windows (`lightning_model`) and their losses (`loss`)."""

from twinids.models.one_class.lightning_model import (
    ErrorTermModule,
    OneClassModule,
    PredictionModule,
    ResidualsAndReadingsModule,
)
from twinids.models.one_class.loss import ErrorTermLoss, PredictionLoss, error_terms, prediction_residuals

__all__ = [
    "ErrorTermLoss",
    "ErrorTermModule",
    "OneClassModule",
    "PredictionLoss",
    "PredictionModule",
    "ResidualsAndReadingsModule",
    "error_terms",
    "prediction_residuals",
]
