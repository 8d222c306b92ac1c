"""An input adapter: a linear map from one dataset's features to the input width of a net trained on another."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class InputAdapter(nn.Module):
    """Runs `net` on windows whose features are first mapped linearly to the width `net` was trained on.

    Transfer learning between datasets with different sensors: the pre-trained net keeps its input width,
    and only this map (trained on the target data) learns how the target's features relate to it.

    Args:
        net: the pre-trained pure detector net.
        n_features: features per time step of the target data.
        source_features: the input width `net` was trained with.
    """

    def __init__(self, net: nn.Module, n_features: int, source_features: int) -> None:
        super().__init__()
        self.adapter = nn.Linear(n_features, source_features)
        self.net = net

    def forward(self, windows: torch.Tensor) -> Any:
        """The net's output (and auxiliary losses, if it returns them) for adapted windows."""
        return self.net(self.adapter(windows))
