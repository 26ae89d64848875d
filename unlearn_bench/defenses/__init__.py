"""Defenses that act on data or schedule; SU is a loss term (see ``conf/defense/su.yaml``)."""

from unlearn_bench.defenses.anomaly_filter import AnomalyFilter
from unlearn_bench.defenses.continued_ft import finetune_on_retain

__all__ = ["AnomalyFilter", "finetune_on_retain"]
