"""Factor transfer (Kim et al., NeurIPS 2018): the student's translated factor matches the factor a
paraphraser (a convolutional auto-encoder of the teacher's map) extracts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.spatial import common_size
from kd.model_outputs import ModelOutputs


def _conv(in_channels: int, out_channels: int, transpose: bool = False) -> nn.Sequential:
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return nn.Sequential(conv(in_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels),
                         nn.LeakyReLU(0.1))


def factor_distance(factor_s: torch.Tensor, factor_t: torch.Tensor) -> torch.Tensor:
    """``mean |f_s / ||f_s|| - f_t / ||f_t|||`` over the flattened, per-sample L2-normalised factors."""
    return (F.normalize(factor_s.float().flatten(1), dim=1) - F.normalize(factor_t.float().flatten(1), dim=1)).abs().mean()


class FactorTransfer(nn.Module):
    """``factor_distance(translator(s), encoder(t)) + reconstruction_weight * mse(decoder(encoder(t)), t)``.

    The paper trains the paraphraser (encoder + decoder, 3x3 conv + BN + LeakyReLU, the factor with
    ``rate`` times the teacher's channels) on reconstruction first and then freezes it; here it trains
    with the student on the reconstruction term alone (its factor is detached in the transfer term), so
    one run does both. The translator (two 3x3 conv blocks on the student map) trains with the student.
    Both are built on the first call; the larger map of the pair is pooled to the smaller.

    Args:
        student_layer: student tap alias.
        teacher_layer: teacher tap alias.
        rate: factor channels / teacher channels (paper: 0.5).
        reconstruction_weight: weight of the paraphraser's reconstruction error inside this term.
    """

    needs_teacher = True

    def __init__(
        self, student_layer: str = "stage3", teacher_layer: str = "stage3", rate: float = 0.5,
        reconstruction_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.student_layer, self.teacher_layer = student_layer, teacher_layer
        self.rate, self.reconstruction_weight = rate, reconstruction_weight
        self.encoder: nn.Module | None = None
        self.decoder: nn.Module | None = None
        self.translator: nn.Module | None = None

    def _build(self, s_channels: int, t_channels: int, device: torch.device) -> None:
        k = max(1, round(t_channels * self.rate))
        self.encoder = nn.Sequential(_conv(t_channels, t_channels), _conv(t_channels, k)).to(device)
        self.decoder = nn.Sequential(_conv(k, t_channels, True), _conv(t_channels, t_channels, True)).to(device)
        self.translator = nn.Sequential(_conv(s_channels, s_channels), _conv(s_channels, k)).to(device)

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        f_s, f_t = common_size(student.feature(self.student_layer), teacher.feature(self.teacher_layer).detach())
        if self.encoder is None:
            self._build(f_s.shape[1], f_t.shape[1], f_s.device)
        assert self.encoder is not None and self.decoder is not None and self.translator is not None  # built together
        factor_t = self.encoder(f_t)
        reconstruction = F.mse_loss(self.decoder(factor_t).float(), f_t.float())
        return factor_distance(self.translator(f_s), factor_t.detach()) + self.reconstruction_weight * reconstruction
