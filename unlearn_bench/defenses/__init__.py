"""Defenses. A ``defense`` config fills any of four slots (``config.GROUP_SLOTS``), each built by
``_target_`` before training:

- ``forget_filter``: before unlearning, ``(forget, model, encoder) -> (kept, dropped indices)``;
- ``loss_terms`` and ``splits``: during unlearning, terms added to the method's loss and the
  builders of the splits they read (SU, ``conf/defense/su.yaml``);
- ``after_unlearning``: ``(model, encoder, retain, trainer_cfg) -> stats``, acting on the model.

A key in a defense file that is neither a slot nor a knob an interpolation reads is refused."""

from unlearn_bench.defenses.anomaly_filter import AnomalyFilter
from unlearn_bench.defenses.continued_ft import RetainFinetune

__all__ = ["AnomalyFilter", "RetainFinetune"]
