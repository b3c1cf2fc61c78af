"""FUSSNet's aleatoric head (``grant-jpg/FUSSNet`` ``aleatoric.py``, ``StochasticDeepMedic``): a Stochastic
Segmentation Network low-rank Gaussian over the logits.

Three 1x1x1 convolutions on ``ReLU(features)`` give the mean ``mu`` (f -> K), the log-diagonal (f -> K) and
the covariance factor (f -> K * rank); with 16 features, 2 classes and rank 10: 34 + 34 + 340 = 408
parameters. Over the flattened logits (class-major, ``K * V`` entries per sample) the distribution is
``N(mu, F F^T + diag(sigma^2))``, ``sigma^2 = exp(log-diagonal) + eps``; outside ``region`` (FUSSNet: the
labeled foreground) ``F`` is zeroed and ``sigma^2 = eps``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, LowRankMultivariateNormal, Normal


class StochasticHead(nn.Module):
    def __init__(self, channels: int = 16, num_classes: int = 2, rank: int = 10, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.num_classes, self.rank, self.epsilon = num_classes, rank, epsilon
        self.mean = nn.Conv3d(channels, num_classes, 1)
        self.log_diagonal = nn.Conv3d(channels, num_classes, 1)
        self.factor = nn.Conv3d(channels, num_classes * rank, 1)

    def forward(self, features: Tensor, region: Tensor) -> tuple[Tensor, Distribution]:
        """``features`` (N, f, X, Y, Z), ``region`` {0, 1} (N, X, Y, Z) -> the mean logits (N, K, X, Y, Z)
        and the distribution over the flattened logits (batch N, event K * X * Y * Z).

        The official code builds it through a wrapper that fails argument validation in PyTorch >= 1.8; it is
        built here directly (validated). When the low-rank form cannot be factorised, independent normals
        with the same diagonal are used, as in the official code.
        """
        h = F.relu(features)
        n = h.shape[0]
        mean = self.mean(h)
        m = region.flatten(1).to(h.dtype).repeat(1, self.num_classes)  # class-major, like the logits
        diagonal = (self.log_diagonal(h).exp() + self.epsilon).flatten(1) * m + self.epsilon
        # official layout: channel r * K + k is the factor of rank r for class k
        factor = self.factor(h).view(n, self.rank, -1).transpose(1, 2) * m.unsqueeze(-1)
        try:
            dist: Distribution = LowRankMultivariateNormal(mean.flatten(1), factor, diagonal, validate_args=True)
        except (RuntimeError, ValueError):
            dist = Independent(Normal(mean.flatten(1), diagonal.sqrt(), validate_args=True), 1)
        return mean, dist


def antithetic_samples(dist: Distribution, samples: int) -> Tensor:
    """``samples`` reparameterised draws: ``samples / 2`` draws ``mu + d`` and their mirrors ``mu - d``
    (the official ``fixed_re_parametrization_trick``), shape (samples, *batch, *event)."""
    if samples % 2:
        raise ValueError(f"the number of samples must be even, got {samples}")
    mean = dist.mean.unsqueeze(0)
    delta = dist.rsample(torch.Size((samples // 2,))) - mean
    return torch.cat([delta, -delta]) + mean
