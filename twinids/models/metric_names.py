"""The names of the detection metrics, without torch: light readers (tables, plots) import them from here."""

from __future__ import annotations

# Scores in [0, 1]: their error bars and axes stay inside that range.
UNIT_INTERVAL_METRICS = (
    "accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "auroc",
    "auprc",
    "fpr",
    "auroc_ovr_macro",
    "batadal_s",
    "batadal_s_ttd",
    "batadal_s_cm",
)
METRIC_NAMES = (*UNIT_INTERVAL_METRICS, "episodes_detected", "episodes_total", "time_to_detection_mean")
RECALL_PER_ATTACK = "recall_attack"  # `<stage>/recall_attack/<type>`: a recall, so in [0, 1] too
