"""Relational KD (Park et al., CVPR 2019): match pairwise distances and triplet angles of embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.embedding import tap_embedding
from kd.model_outputs import ModelOutputs


def normalised_distances(embedding: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances divided by their mean over distinct pairs."""
    distances = torch.cdist(embedding, embedding)
    off_diagonal = ~torch.eye(len(embedding), dtype=torch.bool, device=embedding.device)
    return distances / distances[off_diagonal].mean().clamp_min(1e-12)


def angles(embedding: torch.Tensor, rel_tol: float = 1e-4) -> torch.Tensor:
    """``cos`` of the angle at every anchor ``i`` between ``e_j - e_i`` and ``e_k - e_i``, flattened.

    A direction between points closer than ``rel_tol`` times the mean pairwise distance is taken as
    0 (as the anchor's own, zero, direction always is), with no gradient: the angle is undefined
    there, and ``x / |x|`` near ``x = 0`` would send unbounded gradients into the student.
    """
    diff = embedding[None, :, :] - embedding[:, None, :]
    norm = diff.norm(dim=2, keepdim=True)
    valid = norm > rel_tol * norm.mean().clamp_min(1e-12)
    directions = torch.where(valid, diff / torch.where(valid, norm, torch.ones_like(norm)), 0.0)
    return torch.bmm(directions, directions.transpose(1, 2)).flatten()


class RelationalKD(nn.Module):
    """``distance_weight * Huber(psi_D) + angle_weight * Huber(psi_A)`` between student and teacher.

    Distances are normalised by their mean; both terms use the smooth-L1 (Huber, delta 1) loss with
    mean reduction, as in the paper. Embeddings are pooled tapped features, so widths may differ.

    Args:
        student_layer: student tap alias.
        teacher_layer: teacher tap alias.
        distance_weight: weight of the distance-wise term (paper: 25).
        angle_weight: weight of the angle-wise term (paper: 50).
    """

    needs_teacher = True

    def __init__(
        self,
        student_layer: str = "stage4",
        teacher_layer: str = "stage4",
        distance_weight: float = 25.0,
        angle_weight: float = 50.0,
    ) -> None:
        super().__init__()
        self.student_layer, self.teacher_layer = student_layer, teacher_layer
        self.distance_weight, self.angle_weight = float(distance_weight), float(angle_weight)

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        e_s = tap_embedding(student, self.student_layer)
        e_t = tap_embedding(teacher, self.teacher_layer).detach()
        loss = e_s.new_zeros(())
        if self.distance_weight:
            loss = loss + self.distance_weight * F.smooth_l1_loss(normalised_distances(e_s), normalised_distances(e_t))
        if self.angle_weight:
            loss = loss + self.angle_weight * F.smooth_l1_loss(angles(e_s), angles(e_t))
        return loss
