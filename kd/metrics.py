"""Evaluation metrics for one stage (val or test): accuracy, calibration and fidelity to the teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError


class StageMetrics(nn.Module):
    """Top-1 and top-k accuracy and expected calibration error of the student; with a teacher, also
    teacher accuracy, teacher-student top-1 agreement and ``KL(p_t || p_s)`` at temperature 1.

    Args:
        num_classes: number of classes.
        top_k: the k of top-k accuracy (reduced to ``num_classes - 1`` for small label sets; skipped
            for two classes).
        calibration_bins: bins of the expected calibration error (L1 norm).
    """

    def __init__(self, num_classes: int, top_k: int = 5, calibration_bins: int = 15) -> None:
        super().__init__()
        self.top_k = min(top_k, num_classes - 1)
        self.acc = MulticlassAccuracy(num_classes, average="micro")
        self.acc_top_k = MulticlassAccuracy(num_classes, top_k=self.top_k, average="micro") if self.top_k > 1 else None
        self.ece = MulticlassCalibrationError(num_classes, n_bins=calibration_bins, norm="l1")
        self.agreement = MulticlassAccuracy(num_classes, average="micro")
        self.teacher_acc = MulticlassAccuracy(num_classes, average="micro")
        self.kl = MeanMetric()

    def update(self, student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None) -> None:
        """Add one batch."""
        student_logits = student_logits.float()
        self.acc.update(student_logits, labels)
        if self.acc_top_k is not None:
            self.acc_top_k.update(student_logits, labels)
        self.ece.update(student_logits.softmax(-1), labels)
        if teacher_logits is not None:
            teacher_logits = teacher_logits.float()
            self.agreement.update(student_logits, teacher_logits.argmax(-1))
            self.teacher_acc.update(teacher_logits, labels)
            log_s, log_t = F.log_softmax(student_logits, -1), F.log_softmax(teacher_logits, -1)
            kl = F.kl_div(log_s, log_t, log_target=True, reduction="none").sum(-1)
            self.kl.update(kl)

    def loggable(self, stage: str, with_teacher: bool) -> dict[str, Metric]:
        """Metric objects by logged name, e.g. ``val/acc``, ``val/acc_top5``, ``val/ece``, ``val/kl``."""
        out: dict[str, Metric] = {f"{stage}/acc": self.acc, f"{stage}/ece": self.ece}
        if self.acc_top_k is not None:
            out[f"{stage}/acc_top{self.top_k}"] = self.acc_top_k
        if with_teacher:
            out.update({f"{stage}/agreement": self.agreement, f"{stage}/teacher_acc": self.teacher_acc,
                        f"{stage}/kl": self.kl})
        return out
