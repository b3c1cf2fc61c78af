"""Parameter and MAC counts under the convention of ``vnet.md`` section 5.

MACs are counted with thop's module hooks and these rules, which reproduce ptflops
(``count_functional=False``) and the analytic V-Net totals (35.65 G at 1 x 1 x 96^3):

========================  ===============================================================================
module                    multiply-accumulates per forward (batch included)
========================  ===============================================================================
Conv1d/2d/3d              ``in/groups * out * prod(kernel)`` per output voxel, + 1 per output element (bias)
ConvTranspose1d/2d/3d     ``in * out/groups * prod(kernel)`` per **input** voxel, + 1 per output element
                          (bias)
BatchNorm, InstanceNorm,  2 per element when affine, else 1 (ptflops' rule for every normalisation)
GroupNorm, LayerNorm
ReLU, LeakyReLU           1 per element
Upsample                  1 per output element
Linear                    ``in_features`` per output element, + 1 per output element (bias)
Dropout*, Identity        0 (no rule needed: thop charges nothing for modules without one)
========================  ===============================================================================

Functional operations (skip additions, concatenations, ``F.*`` calls) are not counted, except in modules
that count themselves with a ``macs(inputs, output) -> int`` method (ASE-Net's dynamic convolution). Other module types
fall back to thop's own rules. The model is profiled as a deep copy, so thop's hooks and its
``total_ops``/``total_params`` buffers never touch the caller's module.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from methods.base import OptimizerSpec, Options

from ..config import RunConfig
from ..runtime import build_method

with warnings.catch_warnings():  # thop 0.1.1 uses distutils' LooseVersion at import
    warnings.simplefilter("ignore", DeprecationWarning)
    import thop


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``) of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_macs(
    model: nn.Module, input_shape: tuple[int, ...], forward: Callable[[nn.Module, Tensor], Any] | None = None
) -> int:
    """Multiply-accumulate operations of one eval-mode forward on a zero input of ``input_shape``.

    Args:
        model: the network; left unchanged (a deep copy is profiled on the device of its parameters).
        input_shape: ``(N, C, X, Y, Z)`` (or any shape the model takes); the count covers the whole batch.
        forward: ``forward(model, x)`` for models whose test-time path is not ``model(x)`` (e.g. one
            decoder of several); modules it does not call are not counted.
    """
    wrapper = _Forward(copy.deepcopy(model), forward or (lambda m, x: m(x)))
    param = next(model.parameters(), None)
    x = torch.zeros(input_shape, device=param.device if param is not None else "cpu")
    own = {type(m): _own_rule for m in wrapper.modules() if callable(getattr(m, "macs", None))}
    macs, _ = thop.profile(wrapper, inputs=(x,), custom_ops={**_RULES, **own}, verbose=False)
    return round(macs)


def count_used_params(
    model: nn.Module, input_shape: tuple[int, ...], forward: Callable[[nn.Module, Tensor], Any] | None = None
) -> int:
    """Trainable parameters of the modules that one eval-mode ``forward`` on a zero input actually calls
    (e.g. the one decoder of a two-decoder network used at inference), each parameter counted once."""
    called: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: called.append(m)) for m in model.modules()
             if any(True for _ in m.parameters(recurse=False))]
    param = next(model.parameters(), None)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            (forward or (lambda m, x: m(x)))(model, torch.zeros(input_shape, device=param.device if param is not None else "cpu"))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    used = {id(p): p for m in called for p in m.parameters(recurse=False) if p.requires_grad}
    return sum(p.numel() for p in used.values())


class _Forward(nn.Module):
    def __init__(self, model: nn.Module, forward: Callable[[nn.Module, Tensor], Any]) -> None:
        super().__init__()
        self.model = model
        self.call = forward

    def forward(self, x: Tensor) -> Any:
        return self.call(self.model, x)


def _own_rule(m: nn.Module, x: tuple[Tensor, ...], y: Tensor) -> None:
    """Modules that compute functionally (e.g. per-sample dynamic convolutions) count themselves: ``m.macs``."""
    _add(m, m.macs(x, y))


def _add(module: nn.Module, macs: int) -> None:
    module.total_ops += macs  # type: ignore[operator]


def _bias(module: nn.Module, y: Tensor) -> int:
    return y.numel() if getattr(module, "bias", None) is not None else 0


def _conv(m: nn.modules.conv._ConvNd, x: tuple[Tensor, ...], y: Tensor) -> None:
    per_output = m.in_channels // m.groups * math.prod(m.kernel_size)
    _add(m, per_output * y.numel() + _bias(m, y))


def _conv_transpose(m: nn.modules.conv._ConvNd, x: tuple[Tensor, ...], y: Tensor) -> None:
    per_input = m.out_channels // m.groups * math.prod(m.kernel_size)
    _add(m, per_input * x[0].numel() + _bias(m, y))


def _norm(m: nn.Module, x: tuple[Tensor, ...], y: Tensor) -> None:
    affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
    _add(m, (2 if affine else 1) * x[0].numel())


def _elementwise(m: nn.Module, x: tuple[Tensor, ...], y: Tensor) -> None:
    _add(m, y.numel())


def _linear(m: nn.Linear, x: tuple[Tensor, ...], y: Tensor) -> None:
    _add(m, m.in_features * y.numel() + _bias(m, y))


_RULES: dict[type[nn.Module], Callable[..., None]] = {
    **dict.fromkeys((nn.Conv1d, nn.Conv2d, nn.Conv3d), _conv),
    **dict.fromkeys((nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), _conv_transpose),
    **dict.fromkeys(
        (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
         nn.GroupNorm, nn.LayerNorm),
        _norm,
    ),
    **dict.fromkeys((nn.ReLU, nn.LeakyReLU, nn.Upsample), _elementwise),
    nn.Linear: _linear,
}


def complexity(config: RunConfig, options: Options, patch: tuple[int, int, int]) -> dict[str, int]:
    """``params``: trainable parameters of the saved segmenter; ``params_train``: every parameter any of
    the method's optimisers trains (discriminators included); ``params_inference``: the parameters that
    :meth:`Method.predict` uses (e.g. one decoder of a multi-decoder network); ``macs``: one inference forward
    (:meth:`Method.predict`) of a ``1 x C x patch`` input; ``macs_train``: one forward of the whole
    training-time network (:meth:`Method.training_forward`: every decoder and head, ``tables.md`` section 5).
    """
    method = build_method(config, options)
    main = OptimizerSpec(params=[])
    trained = {id(p): p for spec in method.optimizers(main).values() for p in spec.params}
    shape = (1, config.in_channels, *patch)
    return {
        "params": count_params(method.segmenter()),
        "params_train": sum(p.numel() for p in trained.values()),
        "params_inference": count_used_params(method, (1, config.in_channels, 32, 32, 32), lambda m, x: m.predict(x)),
        "macs": count_macs(method, shape, forward=lambda m, x: m.predict(x)),
        "macs_train": count_macs(method, shape, forward=lambda m, x: m.training_forward(x)),
    }
