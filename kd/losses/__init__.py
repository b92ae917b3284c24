"""Distillation loss terms. Each term is one module with the signature
``term(student: ModelOutputs, teacher: ModelOutputs | None, labels: Tensor) -> Tensor``
and a ``needs_teacher`` flag; :class:`kd.losses.weighted_sum.WeightedSum` combines named terms.
Config files point at the classes by dotted path, so adding a term needs no edit here."""
