"""Interaction stages between readout and output nonlinearity (Part V of the book).

Each stage is one module of this package and one registry line
(``@INTERACTIONS.register(name, extra_settings=...)`` from :mod:`v1nb.models.registry`); a stage
maps the readout's drive ``(B, N)`` and a :class:`~v1nb.models.context.Context` to ``(B, N)``.
"""

from v1nb.models.interactions import attention, normalisation, temporal  # noqa: F401,E402  (registers the stages)
from v1nb.models.interactions.attention import NeighbourAttention  # noqa: E402
from v1nb.models.interactions.normalisation import DivisiveNormalisation  # noqa: E402
from v1nb.models.interactions.temporal import TemporalNormalisation  # noqa: E402

__all__ = ["DivisiveNormalisation", "NeighbourAttention", "TemporalNormalisation"]
