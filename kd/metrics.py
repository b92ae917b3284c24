"""Evaluation metrics for one stage (val or test): accuracy, calibration and fidelity to the teacher.

A teacher read from a top-k cache (``ModelOutputs.top_k``) is scored exactly where the cache allows:
its argmax (accuracy, agreement) is its first index, its perplexity comes from the stored log-probability
of each label; the full-vocabulary ``kl`` needs the whole distribution, so such runs log ``kl_topk``
instead: the KL over the top k and one bucket for the rest at the cache's temperature, the quantity
the cached ``fkl`` term optimises (before ``T^2``), a lower bound of the full KL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from kd.errors import RunError
from kd.model_outputs import ModelOutputs, bucket_forward_kl
from kd.task import Task


def teacher_argmax(teacher: ModelOutputs) -> torch.Tensor:
    """The teacher's most likely class or token at every sample or position (exact for a top-k teacher)."""
    return teacher.top_k.argmax() if teacher.top_k is not None else teacher.logits.max(-1).indices


def kl_name(teacher: ModelOutputs | None) -> str:
    """``kl`` (full distributions, T=1) for a live teacher, ``kl_topk`` for a cached top-k one."""
    return "kl_topk" if teacher is not None and teacher.top_k is not None else "kl"


def fidelity_kl(student_logits: torch.Tensor, teacher: ModelOutputs) -> torch.Tensor:
    """Per-sample or per-position ``KL(p_t || p_s)``: at T=1 over the full distributions, or for a top-k
    teacher over its k entries and one bucket at the cache's temperature (see the module docstring)."""
    if (top_k := teacher.top_k) is not None:
        z = student_logits.float()
        log_ps = F.log_softmax(z if top_k.temperature == 1.0 else z / top_k.temperature, dim=-1)
        return bucket_forward_kl(log_ps, top_k.index.long(), top_k.values.float(), top_k.rest.float())[0]
    log_s, log_t = F.log_softmax(student_logits.float(), -1), F.log_softmax(teacher.logits.float(), -1)
    return (log_t.exp() * (log_t - log_s)).sum(-1)


class StageMetrics(nn.Module):
    """Top-1 and top-k accuracy and expected calibration error of the student; with a teacher, also
    teacher accuracy, teacher-student top-1 agreement and ``KL(p_t || p_s)`` at temperature 1
    (``kl_topk`` for a top-k teacher: see the module docstring).

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

    def update(self, student_logits: torch.Tensor, labels: torch.Tensor, teacher: ModelOutputs | None) -> None:
        """Add one batch."""
        student_logits = student_logits.float()
        self.acc.update(student_logits, labels)
        if self.acc_top_k is not None:
            self.acc_top_k.update(student_logits, labels)
        self.ece.update(student_logits.softmax(-1), labels)
        if teacher is not None:
            predicted = teacher_argmax(teacher)
            self.agreement.update(student_logits, predicted)
            self.teacher_acc.update(predicted, labels)
            self.kl.update(fidelity_kl(student_logits, teacher))

    def loggable(self, stage: str, teacher: ModelOutputs | None) -> dict[str, Metric]:
        """Metric objects by logged name, e.g. ``val/acc``, ``val/acc_top5``, ``val/ece``, ``val/kl``."""
        out: dict[str, Metric] = {f"{stage}/acc": self.acc, f"{stage}/ece": self.ece}
        if self.acc_top_k is not None:
            out[f"{stage}/acc_top{self.top_k}"] = self.acc_top_k
        if teacher is not None:
            out.update({f"{stage}/agreement": self.agreement, f"{stage}/teacher_acc": self.teacher_acc,
                        f"{stage}/{kl_name(teacher)}": self.kl})
        return out


class TokenAgreement(Metric):
    """Share of positions (label not ``ignore_index``) where ``argmax(logits)`` (or the given predicted
    tokens) equals the reference token: next-token accuracy against the labels, or top-1 agreement
    against a teacher's argmax."""

    hits: torch.Tensor  # states (add_state)
    count: torch.Tensor

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.add_state("hits", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        valid = (reference if labels is None else labels) != self.ignore_index
        # max(-1).indices: the same first maximal index as argmax, and faster over a vocabulary on CPU
        predicted = logits if logits.dim() == reference.dim() else logits.max(-1).indices
        self.hits += ((predicted == reference) & valid).sum()
        self.count += valid.sum()

    def compute(self) -> torch.Tensor:
        return self.hits / self.count.clamp_min(1)


class TokenPerplexity(Metric):
    """``exp`` of the mean next-token negative log-likelihood over positions whose label is not ignored."""

    nll: torch.Tensor  # states (add_state)
    count: torch.Tensor

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.add_state("nll", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: ``scores`` are logits ``(..., V)``, or each label's log-probability (labels' shape;
        what a top-k teacher cache stores)."""
        valid = labels != self.ignore_index
        if scores.shape == labels.shape:
            self.nll -= (scores.double() * valid).sum()
        else:
            flat = scores.float().reshape(-1, scores.shape[-1])
            nll = F.cross_entropy(flat, labels.reshape(-1), ignore_index=self.ignore_index, reduction="sum")
            self.nll += nll.double()
        self.count += valid.sum()

    def compute(self) -> torch.Tensor:
        return torch.exp(self.nll / self.count.clamp_min(1)).float()


class LMStageMetrics(nn.Module):
    """Language-model metrics of one stage: the student's next-token accuracy and perplexity; with a
    teacher, also the teacher's perplexity and accuracy, top-1 agreement and the mean per-token
    ``KL(p_t || p_s)`` at temperature 1 (``kl_topk`` for a top-k teacher: see the module docstring).
    Logits are ``(B, L, V)``, labels ``(B, L)`` (-100 ignored)."""

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.acc, self.ppl = TokenAgreement(ignore_index), TokenPerplexity(ignore_index)
        self.agreement, self.teacher_acc = TokenAgreement(ignore_index), TokenAgreement(ignore_index)
        self.teacher_ppl, self.kl = TokenPerplexity(ignore_index), MeanMetric()

    def update(self, student_logits: torch.Tensor, labels: torch.Tensor, teacher: ModelOutputs | None) -> None:
        """Add one batch."""
        self.acc.update(student_logits, labels)
        self.ppl.update(student_logits, labels)
        if teacher is None:
            return
        predicted = teacher_argmax(teacher)
        self.agreement.update(student_logits, predicted, labels)
        self.teacher_acc.update(predicted, labels)
        if teacher.top_k is None:
            self.teacher_ppl.update(teacher.logits, labels)
        elif teacher.top_k.label_log_prob is not None:
            self.teacher_ppl.update(teacher.top_k.label_log_prob, labels)
        else:
            raise RunError(
                "the cached top-k teacher holds no log-probabilities of the labels, so its perplexity cannot be "
                "scored exactly; delete its cache folder (paths.teacher_outputs_dir) so it is rebuilt"
            )
        self.kl.update(fidelity_kl(student_logits, teacher)[labels != self.ignore_index])

    def loggable(self, stage: str, teacher: ModelOutputs | None) -> dict[str, Metric]:
        """Metric objects by logged name: ``val/acc`` (next-token), ``val/ppl``, ``val/agreement``, ..."""
        out: dict[str, Metric] = {f"{stage}/acc": self.acc, f"{stage}/ppl": self.ppl}
        if teacher is not None:
            out.update({f"{stage}/agreement": self.agreement, f"{stage}/teacher_acc": self.teacher_acc,
                        f"{stage}/teacher_ppl": self.teacher_ppl, f"{stage}/{kl_name(teacher)}": self.kl})
        return out


def stage_metrics(task: Task, num_classes: int) -> nn.Module:
    """The metrics of one evaluation stage for ``task`` (classification or language model)."""
    return LMStageMetrics() if task.language_model else StageMetrics(num_classes)


def train_accuracy(task: Task, num_classes: int) -> Metric:
    """Training accuracy for ``task``: top-1 over samples, or next-token accuracy over positions."""
    return TokenAgreement() if task.language_model else MulticlassAccuracy(num_classes, average="micro")
