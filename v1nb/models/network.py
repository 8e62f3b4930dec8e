"""The trainable network: core → readout → optional interaction stage → output nonlinearity.

``rate = ELU(stage(readout(core(image)), context) + offset) + 1`` — positive, smooth and nearly
linear for large drive, the output stage of the Sinz-lab models. Without an interaction stage
this is the plain core–readout model. An optional clustering head (``network.head``) lives on the
readout embeddings: it adds nothing to the forward pass but is part of the state (saved, restored
at early stopping, reloaded from the cache).

Components are looked up by name in :mod:`v1nb.models.registry`; this module lists none of them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from v1nb.models.config import ModelConfig
from v1nb.models.context import Context
from v1nb.models.data import standardise_positions
from v1nb.models.registry import CORES, HEADS, INTERACTIONS, READOUTS, load_components


class CoreReadout(nn.Module):
    """(Average-pool by ``downsample``) → core → readout → [interaction stage] → ``ELU(· + offset) + 1``.

    Parameters
    ----------
    core, readout : nn.Module
    elu_offset : float
    downsample : int
    interaction : nn.Module, optional
        ``(drive (B, N), Context) → (B, N)``.
    head : nn.Module, optional
        Clustering head on the embeddings (not used in ``forward``).
    positions : tensor (N, 3), optional
        Standardised cortical positions, passed to the stage in the context.

    Shapes
    ------
    ``forward``: ``(B, 1, H, W)`` [+ Context] ``→ (B, N)`` positive rates.
    """

    def __init__(self, core: nn.Module, readout: nn.Module, elu_offset: float = 0.0, downsample: int = 1,
                 interaction: nn.Module | None = None, head: nn.Module | None = None,
                 positions: torch.Tensor | None = None):
        super().__init__()
        self.core = core
        self.readout = readout
        self.elu_offset = elu_offset
        self.downsample = downsample
        self.interaction = interaction
        self.head = head
        if positions is not None:
            self.register_buffer("positions", positions.float().clone())
        else:
            self.positions = None

    @property
    def history_lags(self) -> int:
        """Earlier trials the interaction stage reads (0: the prediction depends on the image only)."""
        return int(getattr(self.interaction, "history_lags", 0)) if self.interaction is not None else 0

    def core_features(self, images: torch.Tensor) -> torch.Tensor:
        """The core's output ``(B, C, H', W')`` for images ``(B, 1, H, W)`` (after the average-pooling)."""
        if self.downsample > 1:
            # the core's cost grows with pixels²·channels; halving the resolution is 4x cheaper
            images = F.avg_pool2d(images, self.downsample)
        return self.core(images)

    def drive(self, images: torch.Tensor) -> torch.Tensor:
        """Readout output before any interaction stage and nonlinearity, ``(B, N)``."""
        return self.readout(self.core_features(images))

    def output(self, drive: torch.Tensor) -> torch.Tensor:
        """The output nonlinearity ``ELU(drive + offset) + 1``."""
        return F.elu(drive + self.elu_offset) + 1.0

    def feedforward(self, images: torch.Tensor) -> torch.Tensor:
        """Rates without the interaction stage ``(B, N)``: what the history of a temporal stage is made of."""
        return self.output(self.drive(images))

    def forward(self, images: torch.Tensor, context: Context | None = None) -> torch.Tensor:
        return self.respond(self.drive(images), context)

    def respond(self, drive: torch.Tensor, context: Context | None = None) -> torch.Tensor:
        """Rates ``(B, N)`` from the readout's drive ``(B, N)``: the interaction stage (if any), then the
        output nonlinearity. ``forward`` is ``respond(drive(images))``; a trainer with a frozen core feeds
        the drive from the core's output computed once (:class:`v1nb.models.training.ImageSource`)."""
        if self.interaction is None:
            return self.output(drive)
        context = context or Context()
        context = context.with_(embedding=self.readout.embedding(),
                                positions=context.positions if context.positions is not None else self.positions)
        out = self.interaction(drive, context)
        return out if getattr(self.interaction, "outputs_rates", False) else self.output(out)

    def embedding(self) -> torch.Tensor:
        """The readout embeddings ``(N, C)``."""
        return self.readout.embedding()

    def regularizer(self) -> torch.Tensor:
        reg = self.core.regularizer() + self.readout.regularizer()
        if self.interaction is not None and hasattr(self.interaction, "regularizer"):
            reg = reg + self.interaction.regularizer()
        return reg

    def parameter_groups(self, trainable: str) -> list[nn.Parameter]:
        """The parameters that train under the ``trainable`` setting (see :data:`v1nb.models.config.TRAINABLE`)."""
        parts = {"all": (self,), "readout": (self.readout,),
                 "readout+head": tuple(m for m in (self.readout, self.head) if m is not None),
                 "no_core": tuple(m for m in (self.readout, self.interaction, self.head) if m is not None)}
        if trainable not in parts:
            raise ValueError(f"trainable={trainable!r} must be one of {tuple(parts)}")
        seen: set[int] = set()
        out = []
        for module in parts[trainable]:
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out


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


def embedding_layout(core: nn.Module, n_channels: int) -> tuple[tuple[str, ...], tuple[int, ...], dict]:
    """Named axes of one neuron's embedding: the core's ``embedding_layout`` or ``("feature",)``."""
    if hasattr(core, "embedding_layout"):
        return core.embedding_layout(n_channels)
    return ("feature",), (n_channels,), {}


def build_network(core: str, readout: str, config: ModelConfig, n_neurons: int,
                  image_shape: tuple[int, int], bias: torch.Tensor | None = None,
                  positions: torch.Tensor | None = None,
                  generator: torch.Generator | None = None,
                  rf_pixels: torch.Tensor | None = None,
                  interaction: str = "none", head: str = "none") -> CoreReadout:
    """Assemble a :class:`CoreReadout` from registered components (parameters from the global torch RNG).

    Parameters
    ----------
    core, readout : str
        Names in :data:`~v1nb.models.registry.CORES` / :data:`~v1nb.models.registry.READOUTS`.
    config : ModelConfig
    n_neurons : int
    image_shape : (H, W)
    bias : tensor (N,), optional
        Initial readout biases.
    positions : tensor (N, 3), optional
        Cortical positions as recorded (the position predictor standardises them itself; interaction
        stages get them standardised per axis).
    generator : torch.Generator, optional
        Randomness of the readout during training.
    rf_pixels : tensor (N, 2), optional
        Receptive-field centres in image pixels (x, y): the Gaussian readout starts there.
    interaction, head : str
        Names in :data:`~v1nb.models.registry.INTERACTIONS` / :data:`~v1nb.models.registry.HEADS`, or "none".
    """
    load_components()
    core_net = CORES[core].build(config)
    d = config.downsample
    if image_shape[0] < d or image_shape[1] < d:
        raise ValueError(f"downsample={d} is larger than the images {image_shape}")
    channels, h, w = core_output_shape(core_net, (image_shape[0] // d, image_shape[1] // d))
    ro = READOUTS[readout].build(config, channels, n_neurons, (h, w), bias=bias, positions=positions,
                                 generator=generator, rf_pixels=rf_pixels)
    stage_entry, head_entry = INTERACTIONS.get(interaction), HEADS.get(head)
    standardised = standardise_positions(positions) if positions is not None else None
    stage = stage_entry.build(config, n_neurons, channels, standardised) if stage_entry is not None else None
    _, shape, _ = embedding_layout(core_net, channels)
    head_net = head_entry.build(config, shape) if head_entry is not None else None
    keep_positions = standardised if stage is not None else None
    return CoreReadout(core_net, ro, config.elu_offset, config.downsample, interaction=stage, head=head_net,
                       positions=keep_positions)
