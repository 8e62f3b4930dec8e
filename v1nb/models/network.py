"""The trainable network: a core, a readout and the positive output nonlinearity.

``rate = ELU(readout(core(image)) + offset) + 1`` — positive, smooth and nearly linear for large
drive, the output stage of the Sinz-lab models.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from v1nb.models.config import ModelConfig
from v1nb.models.cores import Stacked2dCore, ln_core
from v1nb.models.readouts import FactorizedReadout, GaussianReadout
from v1nb.models.rotation import RotationEquivariantCore


class CoreReadout(nn.Module):
    """(Average-pool by ``downsample``) → core → readout → ``ELU(· + offset) + 1``.

    Shapes
    ------
    ``forward``: ``(B, 1, H, W) → (B, N)`` positive rates.
    """

    def __init__(self, core: nn.Module, readout: nn.Module, elu_offset: float = 0.0, downsample: int = 1):
        super().__init__()
        self.core = core
        self.readout = readout
        self.elu_offset = elu_offset
        self.downsample = downsample

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.downsample > 1:
            # the core's cost grows with pixels²·channels; halving the resolution is 4x cheaper
            images = F.avg_pool2d(images, self.downsample)
        return F.elu(self.readout(self.core(images)) + self.elu_offset) + 1.0

    def regularizer(self) -> torch.Tensor:
        return self.core.regularizer() + self.readout.regularizer()


def build_core(core: str, config: ModelConfig) -> nn.Module:
    """The core named ``core`` ("cnn", "rotation" or "ln") with the config's settings."""
    c = config
    if core == "cnn":
        return Stacked2dCore(c.layers, c.hidden_channels, c.input_kernel, c.hidden_kernel,
                             depth_separable=c.depth_separable, padding=c.padding,
                             gamma_input=c.gamma_input, gamma_hidden=c.gamma_hidden)
    if core == "ln":
        return ln_core(c.layers, c.hidden_channels, c.input_kernel, c.hidden_kernel,
                       padding=c.padding, gamma_input=c.gamma_input)
    if core == "rotation":
        return RotationEquivariantCore(c.layers, c.rotation_features, c.rotations, c.input_kernel,
                                       c.hidden_kernel, c.basis_order, padding=c.padding,
                                       gamma_input=c.gamma_input, gamma_hidden=c.gamma_hidden,
                                       hidden_features=c.rotation_hidden_features)
    raise ValueError(f"core={core!r} is not one of ('cnn', 'rotation', 'ln')")


def core_output_shape(core: nn.Module, image_shape: tuple[int, int]) -> tuple[int, int, int]:
    """``(C, H', W')`` of the core's output for images of ``image_shape``.

    Raises
    ------
    ValueError
        If the images are too small for the valid convolutions.
    """
    was_training = core.training
    core.eval()
    try:
        with torch.no_grad():
            out = core(torch.zeros(1, 1, *image_shape))
    except RuntimeError as err:
        raise ValueError(f"images of {image_shape} pixels are too small for this core ({err}); "
                         "use smaller kernels, fewer layers or padding=True") from err
    finally:
        core.train(was_training)
    return tuple(out.shape[1:])  # type: ignore[return-value]


def build_network(core: str, readout: str, config: ModelConfig, n_neurons: int,
                  image_shape: tuple[int, int], bias: torch.Tensor | None = None,
                  positions: torch.Tensor | None = None,
                  generator: torch.Generator | None = None,
                  rf_pixels: torch.Tensor | None = None) -> CoreReadout:
    """Assemble a :class:`CoreReadout` (parameters initialised from the global torch RNG).

    Parameters
    ----------
    core, readout : str
    config : ModelConfig
    n_neurons : int
    image_shape : (H, W)
    bias : tensor (N,), optional
        Initial readout biases.
    positions : tensor (N, 3), optional
        Cortical positions for the Gaussian readout's position predictor.
    generator : torch.Generator, optional
        Randomness of the readout during training.
    rf_pixels : tensor (N, 2), optional
        Receptive-field centres in image pixels (x, y): the Gaussian readout starts there.
    """
    core_net = build_core(core, config)
    d = config.downsample
    if image_shape[0] < d or image_shape[1] < d:
        raise ValueError(f"downsample={d} is larger than the images {image_shape}")
    channels, h, w = core_output_shape(core_net, (image_shape[0] // d, image_shape[1] // d))
    if readout == "gaussian":
        mu = None if rf_pixels is None else pixels_to_grid(rf_pixels, config, (h, w))
        ro: nn.Module = GaussianReadout(channels, n_neurons, bias=bias, init_mu_range=config.init_mu_range, mu=mu,
                                        init_sigma=config.init_sigma, gamma_readout=config.gamma_readout,
                                        positions=positions, generator=generator)
    elif readout == "factorized":
        if positions is not None:
            raise ValueError("position_predictor=True needs readout='gaussian' (the factorized readout has no position)")
        ro = FactorizedReadout(channels, n_neurons, (h, w), bias=bias, gamma_readout=config.gamma_readout,
                               generator=generator)
    else:
        raise ValueError(f"readout={readout!r} is not one of ('gaussian', 'factorized')")
    return CoreReadout(core_net, ro, config.elu_offset, config.downsample)


def pixels_to_grid(pixels: torch.Tensor, config: ModelConfig, output_shape: tuple[int, int]) -> torch.Tensor:
    """Image pixel positions ``(N, 2)`` (x, y) → readout grid coordinates in [−1, 1] of the core output.

    Accounts for the input downsampling and for the border that valid convolutions cut off
    (``Σ (k − 1) / 2`` pixels per side).
    """
    d = config.downsample
    border = 0 if config.padding else (config.input_kernel - 1) // 2 + (config.layers - 1) * (config.hidden_kernel - 1) // 2
    h, w = output_shape
    q = (pixels + 0.5) / d - 0.5 - border
    size = torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=q.dtype)
    return (2 * q / size - 1).clamp(-0.95, 0.95)
