"""MAC counting convention of vnet.md section 5 and parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.config import load_config
from benchmarks.report.complexity import complexity, count_macs, count_params
from methods.nets.vnet import VNet


def test_vnet_params_and_macs_at_96() -> None:
    net = VNet(1, 2, 16).train()
    keys = list(net.state_dict())
    assert count_params(net) == 9_448_866
    assert count_macs(net, (1, 1, 96, 96, 96)) / 1e9 == pytest.approx(35.65, abs=0.1)
    assert list(net.state_dict()) == keys and net.training  # no thop buffers, mode untouched


def test_conv3d_by_hand() -> None:
    conv = nn.Conv3d(2, 3, 3, padding=1)
    # 4*5*6 output voxels x 3 output channels x (2 * 27) + bias per output element
    assert count_macs(conv, (1, 2, 4, 5, 6)) == 120 * 3 * 54 + 3 * 120
    assert count_macs(nn.Conv3d(4, 4, 3, groups=2, bias=False), (2, 4, 5, 5, 5)) == 2 * 27 * 4 * 2 * 27


def test_transposed_conv_per_input_voxel() -> None:
    up = nn.ConvTranspose3d(4, 2, 2, stride=2)
    # 3^3 input voxels x 4 * 2 * 2^3, + bias on 2 x 6^3 output elements
    assert count_macs(up, (1, 4, 3, 3, 3)) == 27 * 4 * 2 * 8 + 2 * 216


def test_norm_activation_upsample_dropout() -> None:
    def macs(module: nn.Module) -> int:
        return count_macs(module, (1, 3, 4, 4, 4))

    assert macs(nn.BatchNorm3d(3)) == 2 * 192
    assert macs(nn.InstanceNorm3d(3)) == 192
    assert macs(nn.ReLU()) == 192
    assert macs(nn.Upsample(scale_factor=2, mode="trilinear")) == 8 * 192
    assert macs(nn.Dropout3d(0.5)) == 0


def test_custom_forward_and_frozen_params() -> None:
    net = nn.ModuleDict({"a": nn.Conv3d(1, 2, 1), "b": nn.Conv3d(1, 2, 1, bias=False)})
    net["b"].weight.requires_grad_(False)
    assert count_params(net) == 4
    assert count_macs(net, (1, 1, 2, 2, 2), forward=lambda m, x: m["b"](x)) == 2 * 8
    assert "total_ops" not in dict(net.named_buffers())


def test_modules_that_count_themselves_are_counted() -> None:
    class Functional(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv3d(x, torch.ones(1, 1, 3, 3, 3), padding=1)

        def macs(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
            return 27 * output.numel()

    assert count_macs(Functional(), (1, 1, 4, 4, 4)) == 27 * 64


@pytest.mark.parametrize(("method", "macs", "macs_train"), [
    ("lefed", 35.73, 78.15), ("mcnet_plus", 35.73, 120.46), ("fussnet", 54.26, 54.26), ("vnet", 35.73, 35.73),
])
def test_training_network_macs_match_fig7_references(method: str, macs: float, macs_train: float) -> None:
    """tables.md section 5 (ptflops convention, 1 x 96^3): within 1 %. Counted at 32^3, which scales exactly
    by 27 (every resolution of the network divides evenly)."""
    config, options = load_config({"method": method})
    result = complexity(config, options, (32, 32, 32))
    assert result["macs"] * 27 / 1e9 == pytest.approx(macs, rel=0.01)
    assert result["macs_train"] * 27 / 1e9 == pytest.approx(macs_train, rel=0.01)


@pytest.mark.parametrize(("method", "inference"), [("lefed", 9_448_866), ("mcnet_plus", 9_448_866),
                                                   ("ssnet", 9_448_866), ("fussnet", 9_464_152)])
def test_inference_parameters_are_those_predict_uses(method: str, inference: int) -> None:
    """tables.md section 5: LeFeD and MC-Net+ infer through one V-Net decoder; SS-Net's heads are unused."""
    config, options = load_config({"method": method})
    assert complexity(config, options, (32, 32, 32))["params_inference"] == inference
