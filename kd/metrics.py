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


class TokenAgreement(Metric):
    """Share of positions (label not ``ignore_index``) where ``argmax(logits)`` equals the reference
    token: next-token accuracy against the labels, or top-1 agreement against a teacher's argmax."""

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.add_state("hits", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        valid = (reference if labels is None else labels) != self.ignore_index
        self.hits += ((logits.argmax(-1) == reference) & valid).sum()
        self.count += valid.sum()

    def compute(self) -> torch.Tensor:
        return self.hits / self.count.clamp_min(1)


class TokenPerplexity(Metric):
    """``exp`` of the mean next-token negative log-likelihood over positions whose label is not ignored."""

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.add_state("nll", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        flat = logits.float().reshape(-1, logits.shape[-1])
        nll = F.cross_entropy(flat, labels.reshape(-1), ignore_index=self.ignore_index, reduction="sum")
        self.nll += nll.double()
        self.count += (labels != self.ignore_index).sum()

    def compute(self) -> torch.Tensor:
        return torch.exp(self.nll / self.count.clamp_min(1)).float()


class LMStageMetrics(nn.Module):
    """Language-model metrics of one stage: the student's next-token accuracy and perplexity; with a
    teacher, also the teacher's perplexity and accuracy, top-1 agreement and the mean per-token
    ``KL(p_t || p_s)`` at temperature 1. Logits are ``(B, L, V)``, labels ``(B, L)`` (-100 ignored)."""

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.acc, self.ppl = TokenAgreement(ignore_index), TokenPerplexity(ignore_index)
        self.agreement, self.teacher_acc = TokenAgreement(ignore_index), TokenAgreement(ignore_index)
        self.teacher_ppl, self.kl = TokenPerplexity(ignore_index), MeanMetric()

    def update(self, student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None) -> None:
        """Add one batch."""
        self.acc.update(student_logits, labels)
        self.ppl.update(student_logits, labels)
        if teacher_logits is not None:
            self.agreement.update(student_logits, teacher_logits.argmax(-1), labels)
            self.teacher_acc.update(teacher_logits, labels)
            self.teacher_ppl.update(teacher_logits, labels)
            log_s, log_t = F.log_softmax(student_logits.float(), -1), F.log_softmax(teacher_logits.float(), -1)
            kl = (log_t.exp() * (log_t - log_s)).sum(-1)
            self.kl.update(kl[labels != self.ignore_index])

    def loggable(self, stage: str, with_teacher: bool) -> dict[str, Metric]:
        """Metric objects by logged name: ``val/acc`` (next-token), ``val/ppl``, ``val/agreement``, ..."""
        out: dict[str, Metric] = {f"{stage}/acc": self.acc, f"{stage}/ppl": self.ppl}
        if with_teacher:
            out.update({f"{stage}/agreement": self.agreement, f"{stage}/teacher_acc": self.teacher_acc,
                        f"{stage}/teacher_ppl": self.teacher_ppl, f"{stage}/kl": self.kl})
        return out


def stage_metrics(task: str, num_classes: int) -> nn.Module:
    """The metrics of one evaluation stage for ``task`` (``classification`` or ``lm``)."""
    return LMStageMetrics() if task == "lm" else StageMetrics(num_classes)


def train_accuracy(task: str, num_classes: int) -> Metric:
    """Training accuracy for ``task``: top-1 over samples, or next-token accuracy over positions."""
    return TokenAgreement() if task == "lm" else MulticlassAccuracy(num_classes, average="micro")
