"""Build a pure detector net from its config node, sized to the data."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from twinids.config import build
from twinids.errors import TwinIDSError


def build_net(net_cfg: Any, what: str, n_features: int, n_classes: int) -> nn.Module:
    """The net `net_cfg` names: every net takes `n_features`; a net that outputs classes also takes `n_classes`.

    Forecasters and autoencoders output readings, not classes, so they are not given a class count.
    """
    from hydra.utils import get_class

    try:
        parameters = inspect.signature(get_class(str(net_cfg._target_))).parameters
    except Exception as error:
        raise TwinIDSError(f"cannot build {what}: {str(error).splitlines()[0]}") from None
    sizes = {"n_features": n_features, **({"n_classes": n_classes} if "n_classes" in parameters else {})}
    return build(net_cfg, what, **sizes)
