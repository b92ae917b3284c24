"""ReviewKD: HCL against explicit pooling sums, the review order of the fusions, learned parts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kd.losses.review import KnowledgeReview, hierarchical_context
from kd.model_outputs import ModelOutputs


def outputs(**features: torch.Tensor) -> ModelOutputs:
    return ModelOutputs(logits=torch.zeros(2, 3), features=features)


def block_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average over equal blocks (the map side divisible by ``size``), by loops."""
    n, c, h, _ = x.shape
    k = h // size
    out = torch.zeros(n, c, size, size)
    for i in range(size):
        for j in range(size):
            out[:, :, i, j] = x[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k].mean(dim=(2, 3))
    return out


def test_hcl_weighs_the_pyramid_levels_one_half_one_quarter_one_eighth() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    levels = [((s - t) ** 2).mean()] + [((block_mean(s, k) - block_mean(t, k)) ** 2).mean() for k in (4, 2, 1)]
    expected = (levels[0] + levels[1] / 2 + levels[2] / 4 + levels[3] / 8) / (1 + 1 / 2 + 1 / 4 + 1 / 8)
    assert hierarchical_context(s, t).item() == pytest.approx(expected.item(), rel=1e-5)
    small_s, small_t = s[..., :2, :2], t[..., :2, :2]  # 2x2 maps: only the 1x1 level is smaller
    expected_small = (((small_s - small_t) ** 2).mean() + ((small_s.mean((2, 3)) - small_t.mean((2, 3))) ** 2).mean() / 2) / 1.5
    assert hierarchical_context(small_s, small_t).item() == pytest.approx(expected_small.item(), rel=1e-5)


def test_review_fuses_deeper_residuals_into_shallower_levels() -> None:
    torch.manual_seed(1)
    s1, s2 = torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)
    t1, t2 = torch.randn(2, 5, 8, 8), torch.randn(2, 7, 2, 2)
    review = KnowledgeReview(["a", "b"], ["a", "b"])
    got = review(outputs(a=s1, b=s2), outputs(a=t1, b=t2), None)
    deep, shallow = review.fusions[1], review.fusions[0]
    assert deep.attention is None and shallow.attention is not None  # the deepest level has nothing to fuse
    # deepest level: reduce, resize to the teacher's 2x2, expand
    residual = F.interpolate(deep.reduce(s2), (2, 2), mode="nearest")
    out_deep = deep.expand(residual)
    # shallower level: the residual upsampled to 8x8, mixed by two sigmoid weights per position
    x = shallow.reduce(s1)
    up = F.interpolate(residual, (8, 8), mode="nearest")
    w = shallow.attention(torch.cat([x, up], dim=1))
    out_shallow = shallow.expand(x * w[:, 0:1] + up * w[:, 1:2])
    expected = hierarchical_context(out_deep, t2) + hierarchical_context(out_shallow, t1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert review.fusions[0].reduce[0].out_channels == 6  # min(512, channels of the deepest student map)
    got.backward()
    assert shallow.attention[0].weight.grad is not None and deep.expand[0].weight.grad is not None
