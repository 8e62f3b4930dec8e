"""The optimiser every fit in the package uses: Adam, fused where torch has a fused kernel for it.

One place for the choice, shared by the response models (:mod:`v1nb.models.training`), DEC/IDEC on
arrays (:mod:`v1nb.cluster.dec`) and the spatial decoder (:mod:`v1nb.analysis.spatial`).

Why fused: torch's fused Adam updates all parameters in one kernel instead of a loop of small ops
per tensor, with the same update rule. Measured on one CPU thread: Adam was 5-7 % of a quick
response-model fit's time, the fused kernel a fraction of that; IDEC's autoencoder steps took ~9 %
less time. torch implements the fused kernel only for some devices and floating-point dtypes
and refuses ``fused=True`` elsewhere (at the first step), so on any other device, or for parameters
it does not cover, the ordinary implementation runs instead: the same update rule, only slower.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch


#: Devices whose fused Adam kernel the package uses (CPU is what the book runs on; CUDA is what a GPU
#: fit uses). torch has the kernel for a few more device types; parameters elsewhere get the ordinary
#: implementation, which is always available.
FUSED_DEVICES = ("cpu", "cuda")


def adam(params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float, **options: Any) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr, **options)``, fused when every parameter allows it.

    Fused when every parameter is a floating-point tensor on a device of :data:`FUSED_DEVICES`.
    torch checks this only at the first ``step()`` (and raises there), so it is decided here, once.

    Parameters
    ----------
    params : iterable of tensors or of parameter-group dicts
    lr : float
    **options
        Any other :class:`torch.optim.Adam` option (``weight_decay``, ``betas``, ...); not ``fused``
        or ``foreach``, which this function chooses.

    Returns
    -------
    torch.optim.Adam
    """
    chosen = {"fused", "foreach"} & set(options)
    if chosen:
        raise TypeError(f"adam() chooses {sorted(chosen)} itself; pass only the other Adam options")
    # a group's "params" may be one tensor, a list or a generator (listed here: it is read twice)
    groups = [dict(g, params=[g["params"]] if isinstance(g["params"], torch.Tensor) else list(g["params"]))
              if isinstance(g, dict) else g for g in params]
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = all(p.device.type in FUSED_DEVICES and torch.is_floating_point(p) for p in tensors)
    return torch.optim.Adam(groups, lr=lr, fused=True if fused else None, **options)
