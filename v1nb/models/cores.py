"""Convolutional cores: the stacked 2-D CNN and its linear (LN) counterpart.

A core maps images ``(batch, 1, height, width)`` to feature maps ``(batch, channels, h', w')``
shared by all neurons; the readout then picks, per neuron, a position and a weighting of the
channels. Layout follows the Sinz-lab "Stacked2dCore" (Lurz et al. 2021): conv → batch norm → ELU
per layer, a Laplace-L2-norm smoothness penalty on the first layer's filters and a group-sparsity
penalty on the hidden layers. With ``linear=True`` the same stack has no batch norm and no
nonlinearity, so core + readout + output nonlinearity is a linear–nonlinear (LN) model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from v1nb.models.registry import CORES

#: The 3×3 discrete Laplacian used by the input regulariser.
LAPLACE = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplace_l2(weight: torch.Tensor) -> torch.Tensor:
    """Smoothness of filters: Σ‖L ∗ W‖² / Σ‖W‖² (L = 3×3 Laplacian, zero padding).

    Parameters
    ----------
    weight : tensor (out_channels, in_channels, k, k)

    Returns
    -------
    scalar tensor
    """
    flat = weight.reshape(-1, 1, weight.shape[-2], weight.shape[-1])
    lap = F.conv2d(flat, LAPLACE.to(weight)[None, None], padding=1)
    return lap.pow(2).sum() / flat.pow(2).sum().clamp_min(1e-12)


class _ImageConv(torch.autograd.Function):
    """Stride-1 convolution whose weight gradient is a correlation over the batch (see :func:`image_conv2d`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        p = ctx.padding
        grad_x = F.conv_transpose2d(grad, weight, padding=p) if ctx.needs_input_grad[0] else None
        # dL/dW[o, i] = Σ_b x[b, i] ⋆ grad[b, o]: a convolution of the (C_in, B, H, W) input with the
        # (C_out, B, H', W') gradient as filters, which sums over the batch as over input channels
        grad_w = (F.conv2d(x.transpose(0, 1), grad.transpose(0, 1), padding=p).transpose(0, 1)
                  if ctx.needs_input_grad[1] else None)
        grad_b = grad.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


def image_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 padding: int = 0) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` (stride 1), faster to train on images on CPU.

    The first layer of a core sees one input channel. For that shape oneDNN's weight gradient
    runs at 7–8 GFLOP/s: 12–15 ms per batch of 128 18×32 images with 16 7×7 filters, 24–34 ms
    with 32 (Zen 3), 4–6× its forward. Computed instead as one convolution of the input with the
    output gradient, the batch taking the place of input channels, it takes 4–6 and 8–9 ms: a
    training step of the default CNN about 20 % faster, of the rotation core about 7 %. Same values
    up to float rounding. Only on CPU tensors: elsewhere (cuDNN) the plain ``F.conv2d`` is used.

    Shapes: ``(B, C_in, H, W) → (B, C_out, H + 2p − k + 1, W + 2p − k + 1)``.
    """
    if x.device.type != "cpu":
        return F.conv2d(x, weight, bias, padding=padding)
    return _ImageConv.apply(x, weight, bias, padding)


class ImageConv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` (stride 1) through :func:`image_conv2d`; same parameters and state dict."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return image_conv2d(x, self.weight, self.bias, self.padding[0])


def group_sparsity(weight: torch.Tensor) -> torch.Tensor:
    """Σ over (out, in) channel pairs of the L2 norm of the spatial filter (group lasso).

    Parameters
    ----------
    weight : tensor (out_channels, in_channels, k, k)
    """
    return weight.flatten(2).pow(2).sum(2).clamp_min(1e-12).sqrt().sum()


class DepthSeparableConv(nn.Sequential):
    """1×1 conv → depthwise k×k conv → 1×1 conv (fewer weights than a dense k×k conv).

    Shapes: ``(B, C_in, H, W) → (B, C_out, H', W')``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, padding: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.Conv2d(out_channels, out_channels, kernel, padding=padding, groups=out_channels, bias=False),
            nn.Conv2d(out_channels, out_channels, 1, bias=False),
        )

    @property
    def spatial_weight(self) -> torch.Tensor:
        return self[1].weight


class Stacked2dCore(nn.Module):
    """Stack of convolutional layers: conv(k_in) → BN → ELU, then (L−1) × conv(k_hidden) → BN → ELU.

    Parameters
    ----------
    layers : int
    hidden_channels : int
    input_kernel, hidden_kernel : int (odd)
    depth_separable : bool
        Hidden layers as :class:`DepthSeparableConv`.
    padding : bool
        "Same" zero padding (off: valid convolutions, the maps shrink by k−1 per layer).
    gamma_input, gamma_hidden : float
        Weights of :func:`laplace_l2` on the first layer and :func:`group_sparsity` (averaged over
        hidden layers) in :meth:`regularizer`.
    linear : bool
        No batch norm and no ELU: the LN baseline.

    Shapes
    ------
    ``forward``: ``(B, 1, H, W) → (B, hidden_channels, H', W')``.
    """

    def __init__(self, layers: int = 3, hidden_channels: int = 32, input_kernel: int = 9,
                 hidden_kernel: int = 5, depth_separable: bool = False, padding: bool = False,
                 gamma_input: float = 6.4, gamma_hidden: float = 0.0, linear: bool = False):
        super().__init__()
        self.gamma_input = gamma_input
        self.gamma_hidden = gamma_hidden
        self.linear = linear
        self.out_channels = hidden_channels
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in range(layers):
            k = input_kernel if layer == 0 else hidden_kernel
            pad = k // 2 if padding else 0
            if layer == 0:
                conv: nn.Module = ImageConv2d(1, hidden_channels, k, padding=pad, bias=linear)
            elif depth_separable:
                conv = DepthSeparableConv(hidden_channels, hidden_channels, k, pad)
            else:
                conv = nn.Conv2d(hidden_channels, hidden_channels, k, padding=pad, bias=linear)
            self.convs.append(conv)
            self.norms.append(nn.Identity() if linear else nn.BatchNorm2d(hidden_channels, momentum=0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = norm(conv(x))
            if not self.linear:
                x = F.elu(x)
        return x

    def _spatial_weight(self, conv: nn.Module) -> torch.Tensor:
        return conv.spatial_weight if isinstance(conv, DepthSeparableConv) else conv.weight

    def regularizer(self) -> torch.Tensor:
        """γ_in · Laplace-L2-norm(first layer) + γ_hidden · mean group sparsity of hidden layers."""
        reg = self.gamma_input * laplace_l2(self.convs[0].weight)
        if self.gamma_hidden > 0 and len(self.convs) > 1:
            hidden = sum(group_sparsity(self._spatial_weight(c)) for c in self.convs[1:])
            reg = reg + self.gamma_hidden * hidden / (len(self.convs) - 1)
        return reg


def ln_core(layers: int = 3, hidden_channels: int = 32, input_kernel: int = 9, hidden_kernel: int = 5,
            padding: bool = False, gamma_input: float = 6.4) -> Stacked2dCore:
    """The LN baseline: a :class:`Stacked2dCore` without batch norm and nonlinearities.

    Composing linear convolutions is one linear filter bank with a receptive field of the summed
    kernel sizes, so with a linear readout the model is ``ELU(w · (K ∗ image) + b) + 1``.
    """
    return Stacked2dCore(layers, hidden_channels, input_kernel, hidden_kernel, padding=padding,
                         gamma_input=gamma_input, gamma_hidden=0.0, linear=True)


# --- registry lines ---------------------------------------------------------------------------
_CNN_SETTINGS = ("layers", "hidden_channels", "input_kernel", "hidden_kernel", "depth_separable", "padding",
                 "gamma_input", "gamma_hidden")


@CORES.register("cnn", settings=_CNN_SETTINGS)
def build_cnn(config) -> Stacked2dCore:
    """The default core: :class:`Stacked2dCore` with the config's settings."""
    c = config
    return Stacked2dCore(c.layers, c.hidden_channels, c.input_kernel, c.hidden_kernel,
                         depth_separable=c.depth_separable, padding=c.padding,
                         gamma_input=c.gamma_input, gamma_hidden=c.gamma_hidden)


@CORES.register("ln", settings=("layers", "hidden_channels", "input_kernel", "hidden_kernel", "padding",
                                "gamma_input"))
def build_ln(config) -> Stacked2dCore:
    """The LN baseline (:func:`ln_core`) with the config's settings."""
    c = config
    return ln_core(c.layers, c.hidden_channels, c.input_kernel, c.hidden_kernel, padding=c.padding,
                   gamma_input=c.gamma_input)
