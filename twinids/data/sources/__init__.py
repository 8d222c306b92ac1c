"""Dataset sources: one module per dataset whose `load(root, ...)` returns a tidy frame (configs/data/)."""

from twinids.data.sources import batadal, nsl_kdd, tabular, ton_iot, unsw_nb15

__all__ = ["batadal", "nsl_kdd", "tabular", "ton_iot", "unsw_nb15"]
